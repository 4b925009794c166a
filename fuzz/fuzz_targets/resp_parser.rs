//! Feeds arbitrary bytes, delivered in two reads split at an arbitrary
//! point, to `RequestParser` exactly as a connection does (parse from the
//! unconsumed front of the read buffer, drop consumed bytes, append the
//! next read), and checks that:
//! - parsing never panics and always makes progress when it returns a request;
//! - the arguments of every parsed request lie inside that request's bytes;
//! - the split does not change the outcome: the same requests, the same
//!   error and the same unconsumed tail as when everything arrives at once.
//!
//! Input layout: byte 0 picks the limits (bit 0: unauthenticated client,
//! bits 1-3: proto-max-bulk-len), bytes 1-2 the split point, the rest is
//! what the client sends.
#![no_main]

use ferrokv_resp::{Limits, ProtocolError, RequestParser};
use libfuzzer_sys::fuzz_target;

/// Above this, whether a request without a line end is "too big" depends
/// on how the bytes were chunked (as it does in Redis), so the split
/// equivalence is only checked below it.
const INLINE_MAX: usize = 64 * 1024;

#[derive(Debug, PartialEq)]
struct Outcome {
    requests: Vec<Vec<Vec<u8>>>,
    error: Option<ProtocolError>,
    unconsumed: usize,
}

fn run(reads: &[&[u8]], limits: &Limits) -> Outcome {
    let mut out = Outcome {
        requests: Vec::new(),
        error: None,
        unconsumed: 0,
    };
    let mut parser = RequestParser::new();
    let mut rbuf: Vec<u8> = Vec::new();
    for read in reads {
        // The server sizes its next read with this; it must not panic.
        let _ = parser.bytes_wanted(rbuf.len());
        rbuf.extend_from_slice(read);
        let mut pos = 0;
        loop {
            let buf = &rbuf[pos..];
            match parser.parse(buf, limits) {
                Ok(Some(n)) => {
                    assert!(n > 0, "a request of zero bytes would loop forever");
                    assert!(n <= buf.len(), "consumed {n} of {} bytes", buf.len());
                    let request = &buf[..n];
                    let mut argv: Vec<&[u8]> = Vec::new();
                    parser.args(buf, &mut argv);
                    assert_eq!(argv.len(), parser.args_len());
                    if request[0] == b'*' {
                        // Multibulk arguments borrow the request's bytes.
                        let lo = request.as_ptr() as usize;
                        let hi = lo + request.len();
                        for a in &argv {
                            let start = a.as_ptr() as usize;
                            assert!(
                                a.is_empty() || (start >= lo && start + a.len() <= hi),
                                "argument outside its request"
                            );
                        }
                    } else {
                        let total: usize = argv.iter().map(|a| a.len()).sum();
                        assert!(total <= n, "inline arguments longer than their line");
                    }
                    if !argv.is_empty() {
                        out.requests.push(argv.iter().map(|a| a.to_vec()).collect());
                    }
                    pos += n;
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
        rbuf.drain(..pos);
    }
    out.unconsumed = rbuf.len();
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max_bulk_len = match (data[0] >> 1) & 7 {
        0 => 0,
        1 => 1,
        2 => 16,
        3 => 1024,
        _ => Limits::default().max_bulk_len,
    };
    let limits = Limits {
        max_bulk_len,
        authenticated: data[0] & 1 == 0,
    };
    let payload = &data[3..];
    let split = u16::from_le_bytes([data[1], data[2]]) as usize % (payload.len() + 1);
    let (a, b) = payload.split_at(split);
    let split_run = run(&[a, b], &limits);
    if payload.len() <= INLINE_MAX {
        let whole_run = run(&[payload], &limits);
        assert_eq!(
            split_run, whole_run,
            "outcome depends on where the read was split at {split}"
        );
    }
});
