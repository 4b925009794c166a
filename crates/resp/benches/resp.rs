//! Micro-benchmarks of the wire format: parsing a pipelined batch of
//! requests the way a connection does, and encoding the replies to it.
//!
//! Defaults are short (small samples, one-second warm-up) so a run fits
//! on a shared machine; pass criterion flags after `--` for longer runs,
//! e.g. `cargo bench -p ferrokv-resp -- --measurement-time 10`.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferrokv_resp::{split_args, Limits, Protocol, Reply, RequestParser};

const PIPELINE: usize = 16;

/// `SET key:<i> <16-byte value>` sixteen times, as redis-benchmark -P 16 sends.
fn set_pipeline() -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..PIPELINE {
        let key = format!("key:{i:012}");
        let value = "v".repeat(16);
        buf.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                key.len(),
                value.len()
            )
            .as_bytes(),
        );
    }
    buf
}

/// Receives the arguments of a request without allocating, so the
/// benchmark measures the parser rather than the collection it fills.
struct ArgBytes(usize);

impl<'a> Extend<&'a [u8]> for ArgBytes {
    fn extend<I: IntoIterator<Item = &'a [u8]>>(&mut self, iter: I) {
        self.0 += iter.into_iter().map(|a| a.len()).sum::<usize>();
    }
}

/// Parses every complete request at the front of `buf` and fetches its
/// arguments, as the server's `process` loop does. Returns the bytes
/// consumed and the total argument length (so nothing is optimised away).
fn parse_all(parser: &mut RequestParser, buf: &[u8], limits: &Limits) -> (usize, usize) {
    let mut pos = 0;
    let mut args = ArgBytes(0);
    while let Ok(Some(n)) = parser.parse(&buf[pos..], limits) {
        parser.args(&buf[pos..], &mut args);
        pos += n;
    }
    (pos, args.0)
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    let limits = Limits::default();

    let pipeline = set_pipeline();
    g.throughput(Throughput::Elements(PIPELINE as u64));
    g.bench_function("set_pipeline_16", |b| {
        let mut parser = RequestParser::new();
        b.iter(|| parse_all(&mut parser, black_box(&pipeline), &limits))
    });

    // The same batch arriving in two reads split mid-request: the parser
    // resumes from where it stopped instead of rescanning.
    let split = pipeline.len() / 2 + 3;
    g.bench_function("set_pipeline_16_split_read", |b| {
        let mut parser = RequestParser::new();
        b.iter(|| {
            let (pos, head) = parse_all(&mut parser, black_box(&pipeline[..split]), &limits);
            // The next read appends to the unconsumed tail, which starts at
            // the incomplete request the parser is in the middle of.
            let (_, tail) = parse_all(&mut parser, black_box(&pipeline[pos..]), &limits);
            head + tail
        })
    });

    let inline: Vec<u8> = (0..PIPELINE)
        .flat_map(|i| format!("SET key:{i:012} \"v\\x41lue\" 'x y'\r\n").into_bytes())
        .collect();
    g.bench_function("inline_pipeline_16", |b| {
        let mut parser = RequestParser::new();
        b.iter(|| parse_all(&mut parser, black_box(&inline), &limits))
    });
    g.finish();

    c.bench_function("split_args", |b| {
        let line = b"SET \"key with spaces\" 'single \\' quoted' plain \"\\x00\\xff\\n\"";
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            split_args(black_box(line), &mut out)
        })
    });
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(PIPELINE as u64));
    let value = [b'v'; 16];
    for proto in [Protocol::Resp2, Protocol::Resp3] {
        let name = format!("{proto:?}").to_lowercase();
        g.bench_function(format!("ok_x16_{name}"), |b| {
            let mut reply = Reply::new(proto);
            b.iter(|| {
                reply.buf.clear();
                for _ in 0..PIPELINE {
                    reply.ok();
                }
                reply.buf.len()
            })
        });
        g.bench_function(format!("bulk16_x16_{name}"), |b| {
            let mut reply = Reply::new(proto);
            b.iter(|| {
                reply.buf.clear();
                for _ in 0..PIPELINE {
                    reply.bulk(black_box(&value));
                }
                reply.buf.len()
            })
        });
        g.bench_function(format!("int_x16_{name}"), |b| {
            let mut reply = Reply::new(proto);
            b.iter(|| {
                reply.buf.clear();
                for i in 0..PIPELINE as i64 {
                    reply.int(black_box(i * 1_000_003));
                }
                reply.buf.len()
            })
        });
        // MGET of 16 keys, half missing: an array of bulks and nulls.
        g.bench_function(format!("mget16_{name}"), |b| {
            let mut reply = Reply::new(proto);
            b.iter(|| {
                reply.buf.clear();
                reply.array(PIPELINE);
                for i in 0..PIPELINE {
                    if i % 2 == 0 {
                        reply.bulk(black_box(&value));
                    } else {
                        reply.null();
                    }
                }
                reply.buf.len()
            })
        });
        g.bench_function(format!("double_x16_{name}"), |b| {
            let mut reply = Reply::new(proto);
            b.iter(|| {
                reply.buf.clear();
                for i in 0..PIPELINE {
                    reply.double(black_box(i as f64 * 0.1 + 1.5));
                }
                reply.buf.len()
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = parse, encode
}
criterion_main!(benches);
