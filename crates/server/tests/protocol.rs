//! Wire-protocol tests over raw TCP and through the `redis` crate:
//! pipelining, requests split across reads, inline commands, binary
//! safety, protocol errors (compared byte for byte with a real
//! redis-server), size limits, concurrent clients and connection hygiene
//! (clients, memory and threads back to their baseline after churn), and
//! replies larger than a socket takes at once (also to a client killed
//! while the server waits on its socket).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::ServerProcess;

const TIMEOUT: Duration = Duration::from_secs(10);

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// How reading stopped.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// What was expected arrived; the connection is still open.
    Open,
    /// The server closed the connection (EOF or reset).
    Closed,
    TimedOut,
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// Reads until `done(bytes so far)`, EOF, or the timeout.
fn read_until(s: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> (Vec<u8>, Ending) {
    let mut out = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if done(&out) {
            return (out, Ending::Open);
        }
        match s.read(&mut chunk) {
            Ok(0) => return (out, Ending::Closed),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if is_closed(&e) => return (out, Ending::Closed),
            Err(_) => return (out, Ending::TimedOut),
        }
    }
}

/// Sent after the input of an exchange: its reply marks the end of the
/// replies to the input, when the connection survives it.
const SENTINEL: &[u8] = b"*2\r\n$4\r\nPING\r\n$12\r\nend-of-input\r\n";
const SENTINEL_REPLY: &[u8] = b"$12\r\nend-of-input\r\n";

/// Writes `input` (followed by the sentinel if `sentinel`) on a fresh
/// connection and collects everything the server answers until the
/// sentinel's reply or the connection closes.
fn exchange(port: u16, input: &[u8], sentinel: bool) -> (Vec<u8>, Ending) {
    let mut s = connect(port);
    let mut data = input.to_vec();
    if sentinel {
        data.extend_from_slice(SENTINEL);
    }
    // The server may close before reading everything: a failed write is
    // then part of the outcome, and the reply is still read below.
    let _ = s.write_all(&data);
    let (mut out, ending) = read_until(&mut s, |b| sentinel && b.ends_with(SENTINEL_REPLY));
    if ending == Ending::Open {
        out.truncate(out.len() - SENTINEL_REPLY.len());
    }
    (out, ending)
}

/// Runs each input against real Redis and ferrokv (started with the same
/// `flags`) and requires the same bytes and the same connection outcome.
fn same_as_redis(flags: &[&str], cases: &[(&[u8], bool)]) {
    let redis = ServerProcess::redis(flags);
    let ferrokv = ServerProcess::ferrokv(flags);
    let mut failures = Vec::new();
    for (input, sentinel) in cases {
        let want = exchange(redis.port, input, *sentinel);
        let got = exchange(ferrokv.port, input, *sentinel);
        if want != got {
            let shown = String::from_utf8_lossy(&input[..input.len().min(60)]).into_owned();
            failures.push(format!(
                "input {shown:?} ({} bytes):\n  redis:   {:?} {:?}\n  ferrokv: {:?} {:?}",
                input.len(),
                String::from_utf8_lossy(&want.0),
                want.1,
                String::from_utf8_lossy(&got.0),
                got.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bulk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn pipeline_of_10000_commands_in_one_write() {
    let server = ServerProcess::ferrokv(&[]);
    let mut s = connect(server.port);
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..10_000 {
        let arg = format!("msg-{i}");
        request.extend_from_slice(&resp(&[b"PING", arg.as_bytes()]));
        expected.extend_from_slice(&bulk(arg.as_bytes()));
    }
    // Write from another thread so that neither side can stall on a full
    // socket buffer while the other is not reading.
    let mut writer = s.try_clone().expect("clone socket");
    let sender = std::thread::spawn(move || writer.write_all(&request));
    let (got, ending) = read_until(&mut s, |b| b.len() >= expected.len());
    sender
        .join()
        .expect("writer thread")
        .expect("write pipeline");
    assert_eq!(ending, Ending::Open);
    assert!(
        got == expected,
        "replies differ from the expected 10,000 PING replies"
    );
}

#[test]
fn requests_split_at_every_byte_still_parse() {
    let server = ServerProcess::ferrokv(&[]);
    let set = resp(&[b"SET", b"sp\r\nt", b"v\0\r\nal"]);
    let get = resp(&[b"GET", b"sp\r\nt"]);
    let inline = b"PING \"in line\"\r\n".to_vec();
    let expected: Vec<u8> = [b"+OK\r\n".to_vec(), bulk(b"v\0\r\nal"), bulk(b"in line")].concat();

    // One byte per write.
    let mut s = connect(server.port);
    for byte in [set.clone(), get.clone(), inline.clone()].concat() {
        s.write_all(&[byte]).expect("write");
        s.flush().expect("flush");
        std::thread::sleep(Duration::from_micros(200));
    }
    let (got, _) = read_until(&mut s, |b| b.len() >= expected.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected)
    );

    // Two writes, split at every boundary in turn, with a pause so the
    // server sees the first part on its own.
    let cases = [
        (&set, b"+OK\r\n".to_vec()),
        (&get, bulk(b"v\0\r\nal")),
        (&inline, bulk(b"in line")),
    ];
    for (request, want) in cases {
        let mut s = connect(server.port);
        for cut in 1..request.len() {
            s.write_all(&request[..cut]).expect("write");
            std::thread::sleep(Duration::from_millis(2));
            s.write_all(&request[cut..]).expect("write");
            let (got, ending) = read_until(&mut s, |b| b.len() >= want.len());
            assert_eq!(ending, Ending::Open, "split at {cut} of {request:?}");
            assert_eq!(got, want, "split at {cut} of {request:?}");
        }
    }
}

#[test]
fn inline_commands_match_redis() {
    let cases: &[(&[u8], bool)] = &[
        (b"PING\r\n", true),
        (b"PING\n", true),
        (b"ping   hello  \r\n", true),
        (b"PING \"hello world\"\r\n", true),
        (b"PING 'it\\'s'\r\n", true),
        (b"PING \"\\x41\\x00\\r\\n\\t\\\\ \\\"q\\\"\"\r\n", true),
        (b"SET \"in line\" 'v \\' x'\r\nGET \"in line\"\r\n", true),
        (b"SET k \"a\\x00\\r\\nb\"\r\nGET k\r\n", true),
        (b"\r\n\n   \r\nPING\r\n", true),
        (b"PING a b\r\n", true),
        (b"NOSUCHCOMMAND x\r\n", true),
        (b"PING \"\"\r\n", true),
        (b"*1\r\n$4\r\nPING\r\nPING inline-after-multibulk\r\n", true),
    ];
    same_as_redis(&[], cases);
}

#[test]
fn binary_safe_keys_and_values() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let key: &[u8] = b"k\0ey\r\nwith\r\n\0nul";
    let value: Vec<u8> = (0..=255u8).chain(b"\r\n\0\r\n".iter().copied()).collect();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(&value)
        .query(&mut con)
        .expect("SET");
    let got: Vec<u8> = redis::cmd("GET").arg(key).query(&mut con).expect("GET");
    assert_eq!(got, value);
    let other: Option<Vec<u8>> = redis::cmd("GET").arg(b"k").query(&mut con).expect("GET");
    assert_eq!(other, None);

    // The same through raw RESP, checking the exact reply bytes.
    let mut s = connect(server.port);
    s.write_all(&resp(&[b"GET", key])).expect("write");
    let (got, _) = read_until(&mut s, |b| b.len() >= bulk(&value).len());
    assert_eq!(got, bulk(&value));
}

#[test]
fn protocol_errors_match_redis_and_close() {
    let long = |prefix: &[u8], n: usize, fill: u8| {
        let mut v = prefix.to_vec();
        v.resize(prefix.len() + n, fill);
        v
    };
    let cases: Vec<(Vec<u8>, bool)> = vec![
        (b"*abc\r\n".to_vec(), true),
        (b"*3000000000\r\n".to_vec(), true),
        (b"*3\r\n:1\r\n".to_vec(), true),
        (b"*2\r\nxx".to_vec(), true),
        (b"*1\r\n$-1\r\n".to_vec(), true),
        (b"*1\r\n$abc\r\n".to_vec(), true),
        (b"*1\r\n$600000000\r\n".to_vec(), true),
        (b"PING\r\n*1\r\n$x\r\n".to_vec(), true),
        (b"SET a \"b\r\n".to_vec(), true),
        (b"SET 'a'b c\r\n".to_vec(), true),
        (b"SET \"a\"b c\r\n".to_vec(), true),
        // Limits on lines that never end: no sentinel, it would end them.
        (long(b"", 70_000, b'a'), false),
        (long(b"*", 70_000, b'1'), false),
        (long(b"*1\r\n$", 70_000, b'1'), false),
        // Odd but valid: empty multibulks, and the two bytes after a
        // bulk payload are skipped unchecked.
        (b"*0\r\n*-5\r\n".to_vec(), true),
        (b"*1\r\n$4\r\nPINGxx".to_vec(), true),
    ];
    let cases: Vec<(&[u8], bool)> = cases.iter().map(|(i, s)| (i.as_slice(), *s)).collect();
    same_as_redis(&[], &cases);

    // And the shape itself, so a broken reference cannot hide a bug.
    let server = ServerProcess::ferrokv(&[]);
    let (out, ending) = exchange(server.port, b"*1\r\n$abc\r\n", true);
    assert_eq!(out, b"-ERR Protocol error: invalid bulk length\r\n");
    assert_eq!(ending, Ending::Closed);
}

#[test]
fn proto_max_bulk_len_rejects_larger_bulks() {
    let flags = ["--proto-max-bulk-len", "1mb"];
    same_as_redis(
        &flags,
        &[
            (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n", true),
            (b"*1\r\n$1048576000\r\n", true),
        ],
    );
    // A bulk of exactly the limit is accepted.
    let server = ServerProcess::ferrokv(&flags);
    let mut con = server.connection();
    let value = vec![b'x'; 1024 * 1024];
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg(&value)
        .query(&mut con)
        .expect("SET");
    let got: Vec<u8> = redis::cmd("GET").arg("k").query(&mut con).expect("GET");
    assert!(got == value, "a 1 MB value did not round-trip");
}

/// Writes a 2 MB partial request to a server started with a 1 MB query
/// buffer limit, and returns how the connection ended.
fn oversized_partial_request(port: u16) -> Ending {
    let mut s = connect(port);
    let mut outcome = s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..32 {
        if outcome.is_err() {
            break;
        }
        outcome = s.write_all(&chunk);
    }
    // Either the write already failed, or the server closes without a reply.
    read_until(&mut s, |_| false).1
}

#[test]
fn client_query_buffer_limit_disconnects() {
    let flags = ["--client-query-buffer-limit", "1mb"];
    let redis = ServerProcess::redis(&flags);
    assert_eq!(
        oversized_partial_request(redis.port),
        Ending::Closed,
        "redis"
    );
    let server = ServerProcess::ferrokv(&flags);
    assert_eq!(
        oversized_partial_request(server.port),
        Ending::Closed,
        "ferrokv"
    );
    // Only that client went: the server still serves others.
    let mut con = server.connection();
    let pong: String = redis::cmd("PING").query(&mut con).expect("PING");
    assert_eq!(pong, "PONG");
}

/// 50 clients on their own threads each INCR one key 2,000 times.
fn concurrent_incr_total(server: &ServerProcess) {
    const CLIENTS: usize = 50;
    const EACH: i64 = 2_000;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut con = server.connection();
            std::thread::spawn(move || -> Result<(), String> {
                let mut last = 0;
                for _ in 0..EACH {
                    let n: i64 = redis::cmd("INCR")
                        .arg("counter")
                        .query(&mut con)
                        .map_err(|e| format!("INCR failed: {e}"))?;
                    // Each client sees the counter only go up.
                    if n <= last {
                        return Err(format!("INCR went from {last} to {n}"));
                    }
                    last = n;
                }
                Ok(())
            })
        })
        .collect();
    // Report the first failure once rather than fifty times.
    for t in threads {
        if let Err(e) = t.join().expect("client thread") {
            panic!("{e}");
        }
    }
    let mut con = server.connection();
    let total: i64 = redis::cmd("GET")
        .arg("counter")
        .query(&mut con)
        .expect("GET");
    assert_eq!(total, CLIENTS as i64 * EACH);
}

#[test]
fn concurrent_incr_from_50_clients_is_exact() {
    concurrent_incr_total(&ServerProcess::ferrokv(&[]));
}

/// A field of /proc/<pid>/status, such as `VmRSS` (kB) or `Threads`.
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn connected_clients(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(con)
        .unwrap_or_else(|e| panic!("INFO clients failed: {e}"));
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connected_clients in INFO clients:\n{info}"))
}

/// Polls `f` until it returns true or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One short-lived connection, in one of several ways of leaving.
fn churn_one(port: u16, i: usize) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        panic!("connection {i} refused");
    };
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let pings = resp(&[b"PING"]).repeat(20);
    match i % 5 {
        // Connect and leave.
        0 => {}
        // A complete exchange.
        1 => {
            let _ = s.write_all(&pings);
            let mut buf = vec![0; 7 * 20];
            let _ = s.read_exact(&mut buf);
        }
        // Leave mid-pipeline, a partial command in flight, replies unread.
        2 => {
            let mut data = pings.clone();
            data.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc");
            let _ = s.write_all(&data);
        }
        // Read part of the replies, then half-close first.
        3 => {
            let _ = s.write_all(&pings);
            let mut buf = [0; 10];
            let _ = s.read_exact(&mut buf);
            let _ = s.shutdown(Shutdown::Write);
        }
        // A partial header only.
        _ => {
            let _ = s.write_all(b"*2\r\n$4\r\nPI");
        }
    }
}

#[test]
fn connection_churn_returns_to_baseline() {
    const CONNECTIONS: usize = 10_000;
    const THREADS: usize = 10;
    let server = ServerProcess::ferrokv(&[]);
    let pid = server.pid();
    let mut monitor = server.connection();
    let _: String = redis::cmd("PING").query(&mut monitor).expect("PING");
    // Let start-up settle before taking the baseline.
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = proc_status(pid, "VmRSS");
    let threads_before = proc_status(pid, "Threads");

    let port = server.port;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..CONNECTIONS / THREADS {
                    churn_one(port, t * CONNECTIONS / THREADS + i);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("churn thread");
    }

    let _: String = redis::cmd("PING")
        .query(&mut monitor)
        .expect("server alive after churn");
    let mut threads_after = 0;
    let threads_ok = eventually(Duration::from_secs(15), || {
        threads_after = proc_status(pid, "Threads");
        threads_after <= threads_before
    });
    assert!(
        threads_ok,
        "threads: {threads_before} before, {threads_after} after"
    );
    let rss_after = proc_status(pid, "VmRSS");
    assert!(
        rss_after <= rss_before + 30 * 1024,
        "RSS grew from {rss_before} kB to {rss_after} kB"
    );
    // Only the monitoring connection remains.
    let mut clients = 0;
    let clients_ok = eventually(Duration::from_secs(10), || {
        clients = connected_clients(&mut monitor);
        clients == 1
    });
    assert!(
        clients_ok,
        "connected_clients is {clients} after churn, not 1"
    );
}

/// A value of `len` bytes, different at every position modulo 251, so a
/// reply that arrives shifted or cut does not compare equal.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A fresh server whose key `big` holds `patterned(BIG)`, and a
/// connection to it.
fn with_big_value() -> (ServerProcess, redis::Connection) {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(patterned(BIG))
        .query(&mut con)
        .expect("SET big");
    (server, con)
}

const BIG: usize = 1 << 20;

#[test]
fn replies_larger_than_the_socket_takes_arrive_whole_and_in_order() {
    let (server, _con) = with_big_value();
    let value = patterned(BIG);
    let mut s = connect(server.port);
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        let tag = format!("after-{i}");
        request.extend_from_slice(&resp(&[b"GET", b"big"]));
        request.extend_from_slice(&resp(&[b"PING", tag.as_bytes()]));
        expected.extend_from_slice(&bulk(&value));
        expected.extend_from_slice(&bulk(tag.as_bytes()));
    }
    s.write_all(&request).expect("write pipeline");
    // Not reading for a while: 20 MB of replies fill the socket, and the
    // server is left holding the rest.
    std::thread::sleep(Duration::from_millis(300));
    let (got, ending) = read_until(&mut s, |b| b.len() >= expected.len());
    assert_eq!(ending, Ending::Open);
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "replies arrived altered or out of order");
    // The connection goes on as usual.
    s.write_all(&resp(&[b"PING"])).expect("write PING");
    let (got, ending) = read_until(&mut s, |b| b.ends_with(b"\r\n"));
    assert_eq!((got.as_slice(), ending), (&b"+PONG\r\n"[..], Ending::Open));
}

#[test]
fn clients_gone_with_replies_unsent_are_let_go() {
    let (server, mut con) = with_big_value();
    let baseline = connected_clients(&mut con);
    let request = resp(&[b"GET", b"big"]).repeat(50);
    let gone: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = connect(server.port);
            s.write_all(&request).expect("write pipeline");
            s
        })
        .collect();
    assert!(
        eventually(TIMEOUT, || connected_clients(&mut con) == baseline + 10),
        "the ten readers never all connected"
    );
    // Give the server time to fill their sockets and stall on them.
    std::thread::sleep(Duration::from_millis(300));
    drop(gone);
    assert!(
        eventually(TIMEOUT, || connected_clients(&mut con) == baseline),
        "clients that left with replies unsent are still counted"
    );
    let pong: String = redis::cmd("PING").query(&mut con).expect("PING");
    assert_eq!(pong, "PONG");
}

#[test]
fn a_client_killed_while_its_replies_do_not_fit_is_closed() {
    let (server, mut con) = with_big_value();
    let baseline = connected_clients(&mut con);
    let mut stalled = connect(server.port);
    stalled
        .write_all(&resp(&[b"CLIENT", b"ID"]))
        .expect("write CLIENT ID");
    let (id, _) = read_until(&mut stalled, |b| b.ends_with(b"\r\n"));
    let id = String::from_utf8_lossy(&id[1..id.len() - 2]).into_owned();
    // 50 MB of replies it never reads: the server is left waiting on a
    // full socket.
    stalled
        .write_all(&resp(&[b"GET", b"big"]).repeat(50))
        .expect("write pipeline");
    std::thread::sleep(Duration::from_millis(300));
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .query(&mut con)
        .expect("CLIENT KILL");
    assert_eq!(killed, 1);
    assert!(
        eventually(TIMEOUT, || connected_clients(&mut con) == baseline),
        "a killed client waiting on a full socket is still connected"
    );
}
