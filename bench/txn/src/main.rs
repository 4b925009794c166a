//! Load driver for MULTI/EXEC transactions, which redis-benchmark cannot
//! send as one unit.
//!
//! Each transaction is `MULTI`, five `INCR counter:<r>` on the same key, `EXEC`,
//! with `<r>` drawn per transaction from the keyspace and zero-padded to 12
//! digits like redis-benchmark's `__rand_int__`, so it touches the same keys
//! as `redis-benchmark -t incr`. One key per transaction makes the reply
//! checkable: EXEC must return five consecutive integers, which it only does
//! if nothing else ran on that key in between.
//!
//! Clients share one counter of transactions still to send; each takes up
//! to `-P` at a time, writes them in one go and then reads and checks every
//! reply (`+OK`, five `+QUEUED`, `*5` of integers). Any other reply counts the
//! transaction as an error. Like redis-benchmark it runs on one thread.
//!
//! Output on stdout is CSV in redis-benchmark's style, one header line and
//! one line for the test named "MULTI" (latencies per batch of `-P`
//! transactions, in milliseconds):
//!
//! ```text
//! "test","tps","cmds_per_sec","errors","avg_latency_ms","p50_latency_ms","p99_latency_ms"
//! "MULTI","41322.31","289256.20","0","1.201","1.143","2.311"
//! ```
//!
//! Run: `cargo run --release -p txn-bench -- -p 6379 -c 50 -n 100000 -P 1 -r 100000`

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Commands per transaction: MULTI, the INCRs, EXEC.
const INCRS: usize = 5;
const COMMANDS: usize = INCRS + 2;
/// Digits of the key's random part, as redis-benchmark pads `__rand_int__`.
const KEY_DIGITS: usize = 12;

const USAGE: &str = "usage: txn_bench [-h host] [-p port] [-c clients] [-n transactions] \
                     [-P pipeline] [-r keyspace]";

struct Options {
    host: String,
    port: u16,
    clients: u64,
    transactions: u64,
    pipeline: u64,
    keyspace: u64,
}

fn parse_options() -> Result<Options, String> {
    let mut opts = Options {
        host: "127.0.0.1".into(),
        port: 6379,
        clients: 50,
        transactions: 100_000,
        pipeline: 1,
        keyspace: 100_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" {
            return Err(USAGE.into());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || {
            value
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag}: expected a positive integer, got {value:?}"))
        };
        match flag.as_str() {
            "-h" => opts.host = value.clone(),
            "-p" => {
                opts.port = value
                    .parse()
                    .map_err(|_| format!("-p: bad port {value:?}"))?
            }
            "-c" => opts.clients = number()?,
            "-n" => opts.transactions = number()?,
            "-P" => opts.pipeline = number()?,
            "-r" => opts.keyspace = number()?,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(opts)
}

/// One transaction's request bytes with the key's digits at `digits`, so
/// each transaction only rewrites those.
struct Template {
    bytes: Vec<u8>,
    digits: Vec<usize>,
}

impl Template {
    fn new() -> Self {
        let key = format!("counter:{:0width$}", 0, width = KEY_DIGITS);
        let mut bytes = b"*1\r\n$5\r\nMULTI\r\n".to_vec();
        let mut digits = Vec::with_capacity(INCRS);
        for _ in 0..INCRS {
            bytes.extend_from_slice(format!("*2\r\n$4\r\nINCR\r\n${}\r\n", key.len()).as_bytes());
            digits.push(bytes.len() + key.len() - KEY_DIGITS);
            bytes.extend_from_slice(key.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        Template { bytes, digits }
    }

    /// Appends the transaction for key number `r` to `out`.
    fn write(&self, r: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let mut padded = [b'0'; KEY_DIGITS];
        let mut n = r;
        for d in padded.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        for &at in &self.digits {
            out[start + at..start + at + KEY_DIGITS].copy_from_slice(&padded);
        }
    }
}

/// The replies the driver cares about; bulk strings and nested arrays are
/// only skipped over.
#[derive(Debug, PartialEq)]
enum Reply {
    Simple(Vec<u8>),
    Error,
    Int(i64),
    Array(Vec<Reply>),
    Other,
}

/// Parses one reply from `buf[*pos..]`, advancing `pos`; `None` if the
/// buffer does not yet hold all of it.
fn parse(buf: &[u8], pos: &mut usize) -> Result<Option<Reply>, String> {
    let Some(line_len) = buf[*pos..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[*pos + 1..*pos + line_len];
    let kind = buf[*pos];
    let after = *pos + line_len + 2;
    let number = || -> Result<i64, String> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad number in reply: {}", String::from_utf8_lossy(line)))
    };
    let reply = match kind {
        b'+' => Reply::Simple(line.to_vec()),
        b'-' => Reply::Error,
        b':' => Reply::Int(number()?),
        b'$' => {
            let len = number()?;
            if len >= 0 {
                let end = after + len as usize + 2;
                if buf.len() < end {
                    return Ok(None);
                }
                *pos = end;
                return Ok(Some(Reply::Other));
            }
            Reply::Other
        }
        b'*' => {
            let len = number()?;
            let mut at = after;
            let mut items = Vec::with_capacity(len.max(0) as usize);
            for _ in 0..len {
                match parse(buf, &mut at)? {
                    Some(item) => items.push(item),
                    None => return Ok(None),
                }
            }
            *pos = at;
            return Ok(Some(if len < 0 {
                Reply::Other
            } else {
                Reply::Array(items)
            }));
        }
        other => return Err(format!("unexpected reply type byte {other:#04x}")),
    };
    *pos = after;
    Ok(Some(reply))
}

/// Whether the replies of one transaction (in order) are what a working
/// server sends: OK, QUEUED for each INCR, and consecutive counts from EXEC.
fn transaction_ok(replies: &[Reply]) -> bool {
    let [multi, queued @ .., exec] = replies else {
        return false;
    };
    let simple = |r: &Reply, s: &[u8]| matches!(r, Reply::Simple(v) if v == s);
    if !simple(multi, b"OK") || !queued.iter().all(|r| simple(r, b"QUEUED")) {
        return false;
    }
    let Reply::Array(counts) = exec else {
        return false;
    };
    counts.len() == INCRS
        && counts.iter().zip(counts.iter().skip(1)).all(
            |pair| matches!(pair, (Reply::Int(a), Reply::Int(b)) if a.checked_add(1) == Some(*b)),
        )
}

/// Claims the next batch of up to `pipeline` transactions from those `left`
/// to send; `None` once all are claimed.
fn take(left: &AtomicU64, pipeline: u64) -> Option<u64> {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n > 0).then(|| n - pipeline.min(n))
    })
    .ok()
    .map(|before| before.min(pipeline))
}

struct ClientResult {
    done: u64,
    errors: u64,
    /// Time from sending a batch to its last reply, per batch.
    latencies: Vec<Duration>,
}

async fn client(
    opts: Arc<Options>,
    left: Arc<AtomicU64>,
    template: Arc<Template>,
) -> Result<ClientResult, String> {
    let mut stream = TcpStream::connect((opts.host.as_str(), opts.port))
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", opts.host, opts.port))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut result = ClientResult {
        done: 0,
        errors: 0,
        latencies: Vec::new(),
    };
    let mut out = Vec::with_capacity(template.bytes.len() * opts.pipeline as usize);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut replies = Vec::with_capacity(COMMANDS * opts.pipeline as usize);
    while let Some(batch) = take(&left, opts.pipeline) {
        out.clear();
        for _ in 0..batch {
            template.write(rand::random::<u64>() % opts.keyspace, &mut out);
        }
        let sent = Instant::now();
        stream.write_all(&out).await.map_err(|e| e.to_string())?;
        let wanted = batch as usize * COMMANDS;
        replies.clear();
        let mut pos = 0;
        buf.clear();
        loop {
            while replies.len() < wanted {
                match parse(&buf, &mut pos)? {
                    Some(reply) => replies.push(reply),
                    None => break,
                }
            }
            if replies.len() == wanted {
                break;
            }
            buf.drain(..pos);
            pos = 0;
            let mut chunk = [0u8; 16 * 1024];
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed by the server".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        if pos != buf.len() {
            return Err("more replies than commands sent".into());
        }
        result.latencies.push(sent.elapsed());
        result.done += batch;
        result.errors += replies
            .chunks(COMMANDS)
            .filter(|txn| !transaction_ok(txn))
            .count() as u64;
    }
    Ok(result)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> ExitCode {
    let opts = match parse_options() {
        Ok(opts) => Arc::new(opts),
        Err(msg) => {
            eprintln!("txn_bench: {msg}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("txn_bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let left = Arc::new(AtomicU64::new(opts.transactions));
    let template = Arc::new(Template::new());
    let began = Instant::now();
    let results = runtime.block_on(async {
        let tasks: Vec<_> = (0..opts.clients)
            .map(|_| tokio::spawn(client(opts.clone(), left.clone(), template.clone())))
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await.map_err(|e| e.to_string()).and_then(|r| r));
        }
        results
    });
    let elapsed = began.elapsed().as_secs_f64();

    let (mut done, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
    for result in results {
        match result {
            Ok(r) => {
                done += r.done;
                errors += r.errors;
                latencies.extend(r.latencies);
            }
            Err(msg) => {
                eprintln!("txn_bench: {msg}");
                return ExitCode::FAILURE;
            }
        }
    }
    latencies.sort_unstable();
    let pct = |p: usize| {
        latencies
            .get(latencies.len() * p / 100)
            .copied()
            .map_or(0.0, millis)
    };
    let avg = if latencies.is_empty() {
        0.0
    } else {
        millis(latencies.iter().sum::<Duration>()) / latencies.len() as f64
    };
    let tps = done as f64 / elapsed;
    println!(
        "\"test\",\"tps\",\"cmds_per_sec\",\"errors\",\"avg_latency_ms\",\"p50_latency_ms\",\"p99_latency_ms\""
    );
    println!(
        "\"MULTI\",\"{tps:.2}\",\"{:.2}\",\"{errors}\",\"{avg:.3}\",\"{:.3}\",\"{:.3}\"",
        tps * COMMANDS as f64,
        pct(50),
        pct(99)
    );
    if errors > 0 {
        eprintln!("txn_bench: {errors} of {done} transactions got unexpected replies");
    }
    ExitCode::SUCCESS
}
