//! Pub/Sub and keyspace notifications over raw TCP.
//!
//! The differential runner sends one command and reads one reply, which
//! cannot follow subscribers; here scripted flows with several clients run
//! against a real redis-server and against ferrokv, and every byte each
//! client receives is compared. After each step every client is synced
//! with a `PING <token>`: whatever arrived before the token's reply
//! belongs to that step, so the transcript does not depend on timing.
//!
//! Then ferrokv alone: 10,000 messages arrive complete and in order while
//! other clients keep working, a subscriber that never reads is
//! disconnected at its output limit with the server's memory bounded, and
//! disconnected subscribers leave no subscriptions behind.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::ServerProcess;

const TIMEOUT: Duration = Duration::from_secs(10);

fn encode(words: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
        out.extend_from_slice(w);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Length of the complete RESP2/RESP3 frame at the start of `b`, if it is
/// all there.
fn frame_len(b: &[u8]) -> Option<usize> {
    let line_end = b.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&b[1..line_end]).ok()?;
    let after = line_end + 2;
    match b.first()? {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(after),
        b'$' | b'=' | b'!' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            let end = after + n as usize + 2;
            (b.len() >= end).then_some(end)
        }
        b'*' | b'>' | b'~' | b'%' => {
            let n: i64 = head.parse().ok()?;
            let items = if b[0] == b'%' { 2 * n } else { n };
            let mut pos = after;
            for _ in 0..items.max(0) {
                pos += frame_len(&b[pos..])?;
            }
            Some(pos)
        }
        _ => None,
    }
}

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Conn { s, buf: Vec::new() }
    }

    fn send(&mut self, words: &[&[u8]]) {
        self.s.write_all(&encode(words)).expect("send");
    }

    /// Reads the next complete frame.
    fn frame(&mut self) -> Vec<u8> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if let Some(n) = frame_len(&self.buf) {
                return self.buf.drain(..n).collect();
            }
            match self.s.read(&mut chunk) {
                Ok(0) => panic!(
                    "connection closed; had {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    fn call(&mut self, words: &[&[u8]]) -> Vec<u8> {
        self.send(words);
        self.frame()
    }

    /// Everything received up to the reply to `PING token`, that reply
    /// excluded.
    fn sync(&mut self, token: &str) -> Vec<u8> {
        self.send(&[b"PING", token.as_bytes()]);
        let mut got = Vec::new();
        loop {
            let f = self.frame();
            if f.windows(token.len()).any(|w| w == token.as_bytes()) {
                return got;
            }
            got.extend_from_slice(&f);
        }
    }
}

/// One step of a flow: a command sent by one client, or a pause.
enum Step {
    Cmd(usize, &'static [&'static str]),
    /// Like Cmd, but its replies are not compared (they hold client ids).
    Quiet(usize, &'static [&'static str]),
    Sleep(u64),
    /// Sends a command without waiting for its reply (a blocking command
    /// whose reply a later step's sync collects).
    Send(usize, &'static [&'static str]),
}

use Step::{Cmd, Quiet, Send, Sleep};

/// Runs a flow with `clients` connections and returns, per step and
/// client, what that client received.
fn transcript(port: u16, clients: usize, steps: &[Step]) -> Vec<String> {
    let mut conns: Vec<Conn> = (0..clients).map(|_| Conn::new(port)).collect();
    let mut out = Vec::new();
    let mut n = 0;
    for (i, step) in steps.iter().enumerate() {
        let (who, words, quiet) = match step {
            Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(*ms));
                continue;
            }
            Send(who, words) => {
                let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
                conns[*who].send(&words);
                continue;
            }
            Cmd(who, words) => (*who, words, false),
            Quiet(who, words) => (*who, words, true),
        };
        let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        conns[who].send(&words);
        // The sender first: once its command has run, what it published
        // is queued for the others before their syncs arrive.
        let order = std::iter::once(who).chain((0..clients).filter(|c| *c != who));
        let mut received = vec![Vec::new(); clients];
        for c in order {
            n += 1;
            received[c] = conns[c].sync(&format!("sync-{n}"));
        }
        for (c, got) in received.iter().enumerate() {
            if !quiet {
                out.push(format!(
                    "step {i} {:?} client {c}: {}",
                    step_words(step),
                    String::from_utf8_lossy(got)
                ));
            }
        }
    }
    out
}

fn step_words(step: &Step) -> &'static [&'static str] {
    match step {
        Cmd(_, w) | Quiet(_, w) | Send(_, w) => w,
        Sleep(_) => &[],
    }
}

fn compare(clients: usize, steps: &[Step], ferrokv_args: &[&str]) {
    let redis = ServerProcess::redis(&[]);
    let ours = ServerProcess::ferrokv(ferrokv_args);
    let want = transcript(redis.port, clients, steps);
    let got = transcript(ours.port, clients, steps);
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w, g, "ferrokv differs from redis-server");
    }
    assert_eq!(want.len(), got.len());
}

#[test]
fn subscribe_publish_unsubscribe_match_redis() {
    compare(
        3,
        &[
            Cmd(0, &["SUBSCRIBE", "news", "sport", "news"]),
            Cmd(1, &["PSUBSCRIBE", "n*", "s?ort"]),
            Cmd(2, &["PUBLISH", "news", "hello"]),
            Cmd(2, &["PUBLISH", "sport", "goal"]),
            Cmd(2, &["PUBLISH", "nothing", "x"]),
            Cmd(2, &["PUBLISH", "other", "x"]),
            Cmd(2, &["PUBSUB", "NUMSUB", "news", "sport", "none"]),
            Cmd(2, &["PUBSUB", "NUMPAT"]),
            Cmd(2, &["PUBSUB", "CHANNELS", "n*"]),
            Cmd(0, &["GET", "x"]),
            Cmd(0, &["CLIENT", "LIST"]),
            Cmd(0, &["PING"]),
            Cmd(0, &["UNSUBSCRIBE", "news", "nope"]),
            Cmd(2, &["PUBLISH", "news", "after"]),
            Cmd(0, &["UNSUBSCRIBE"]),
            Cmd(0, &["UNSUBSCRIBE"]),
            Cmd(0, &["GET", "x"]),
            Cmd(1, &["PUNSUBSCRIBE", "s?ort"]),
            Cmd(1, &["PUNSUBSCRIBE"]),
            Cmd(1, &["PUNSUBSCRIBE"]),
            // Shard channels are a namespace of their own.
            Cmd(0, &["SSUBSCRIBE", "s1", "s2"]),
            Cmd(1, &["SUBSCRIBE", "s1"]),
            Cmd(2, &["SPUBLISH", "s1", "shard"]),
            Cmd(2, &["PUBLISH", "s1", "classic"]),
            Cmd(2, &["PUBSUB", "SHARDNUMSUB", "s1", "s3"]),
            Cmd(0, &["SUBSCRIBE", "c"]),
            Cmd(0, &["SUNSUBSCRIBE", "s1"]),
            Cmd(0, &["SUNSUBSCRIBE"]),
            Cmd(0, &["PING", "still"]),
            Cmd(0, &["UNSUBSCRIBE"]),
            Cmd(0, &["SUNSUBSCRIBE"]),
            Cmd(1, &["RESET"]),
            Cmd(2, &["PUBLISH", "s1", "gone"]),
            Cmd(1, &["SUBSCRIBE", "q"]),
            Cmd(2, &["PUBSUB", "NUMSUB", "q"]),
        ],
        &[],
    );
}

#[test]
fn resp3_pushes_match_redis() {
    compare(
        2,
        &[
            Quiet(0, &["HELLO", "3"]),
            Cmd(0, &["SUBSCRIBE", "a"]),
            Cmd(0, &["PSUBSCRIBE", "*"]),
            Cmd(1, &["PUBLISH", "a", "one"]),
            // Everything is allowed in RESP3, and a client's own message
            // comes before its reply.
            Cmd(0, &["SET", "k", "v"]),
            Cmd(0, &["PUBLISH", "a", "self"]),
            Cmd(0, &["PING"]),
            Cmd(0, &["UNSUBSCRIBE", "x"]),
            Cmd(0, &["PUNSUBSCRIBE"]),
            Cmd(0, &["UNSUBSCRIBE"]),
            Cmd(0, &["UNSUBSCRIBE"]),
            Cmd(1, &["PUBLISH", "a", "two"]),
        ],
        &[],
    );
}

#[test]
fn keyspace_notifications_match_redis() {
    compare(
        3,
        &[
            Cmd(2, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
            Cmd(2, &["CONFIG", "GET", "notify-keyspace-events"]),
            Cmd(0, &["PSUBSCRIBE", "__key*__:*"]),
            Cmd(
                1,
                &["SUBSCRIBE", "__keyevent@0__:expired", "__keyspace@1__:m"],
            ),
            Cmd(2, &["SET", "a", "1"]),
            Cmd(2, &["SET", "a", "2", "EX", "100"]),
            Cmd(2, &["INCR", "a"]),
            Cmd(2, &["INCRBYFLOAT", "a", "1.5"]),
            Cmd(2, &["APPEND", "a", "x"]),
            Cmd(2, &["APPEND", "b", "x"]),
            Cmd(2, &["SETRANGE", "a", "0", "z"]),
            Cmd(2, &["SETRANGE", "c", "2", "z"]),
            Cmd(2, &["GETSET", "a", "v"]),
            Cmd(2, &["GETDEL", "a"]),
            Cmd(2, &["MSET", "k1", "1", "k2", "2"]),
            Cmd(2, &["RENAME", "k1", "k3"]),
            Cmd(2, &["RENAME", "k3", "k2"]),
            Cmd(2, &["RENAMENX", "k2", "m"]),
            Cmd(2, &["MOVE", "m", "1"]),
            Cmd(2, &["SET", "k2", "v"]),
            Cmd(2, &["COPY", "k2", "k5"]),
            Cmd(2, &["COPY", "k2", "k5", "REPLACE"]),
            Cmd(2, &["COPY", "k2", "k6", "DB", "3"]),
            Cmd(2, &["EXPIRE", "k5", "100"]),
            Cmd(2, &["EXPIRE", "k5", "100", "NX"]),
            Cmd(2, &["PERSIST", "k5"]),
            Cmd(2, &["PEXPIREAT", "k5", "1"]),
            Cmd(2, &["GETEX", "k2", "EX", "100"]),
            Cmd(2, &["GETEX", "k2", "PERSIST"]),
            Cmd(2, &["GETEX", "k2", "PXAT", "1"]),
            Cmd(2, &["SETNX", "n", "1"]),
            Cmd(2, &["SETEX", "x", "100", "1"]),
            Cmd(2, &["MSETNX", "m1", "1", "m2", "2"]),
            Cmd(2, &["DECRBY", "n", "2"]),
            Cmd(2, &["DEL", "n", "x", "nope"]),
            Cmd(2, &["UNLINK", "m1"]),
            Cmd(2, &["SET", "z", "1", "NX"]),
            Cmd(2, &["SET", "z", "2", "XX", "KEEPTTL"]),
            Cmd(2, &["SET", "y", "1", "XX"]),
            Cmd(2, &["FLUSHDB"]),
            // Expired by the active cycle or on access: the same event.
            Cmd(2, &["SET", "e", "1", "PX", "200"]),
            Sleep(600),
            Cmd(2, &["GET", "e"]),
            Cmd(2, &["CONFIG", "SET", "notify-keyspace-events", "Egn"]),
            Cmd(2, &["SET", "f", "1"]),
            Cmd(2, &["DEL", "f"]),
            Cmd(2, &["CONFIG", "SET", "notify-keyspace-events", ""]),
            Cmd(2, &["SET", "f", "1"]),
        ],
        &[],
    );
}

/// `keymiss` (class m) for every read lookup that finds nothing, as Redis
/// 7.0's lookupKeyRead: not for writes, OBJECT or hits; after `expired`
/// when the lookup finds the key expired.
#[test]
fn keymiss_notifications_match_redis() {
    compare(
        2,
        &[
            Cmd(1, &["CONFIG", "SET", "notify-keyspace-events", "KEAm"]),
            Cmd(0, &["PSUBSCRIBE", "__key*__:*"]),
            Cmd(1, &["SET", "s", "v"]),
            Cmd(1, &["RPUSH", "l", "b", "a"]),
            Cmd(1, &["HSET", "h", "f", "v"]),
            Cmd(1, &["SADD", "st", "a"]),
            Cmd(1, &["ZADD", "z", "1", "a"]),
            Cmd(1, &["GET", "nk"]),
            Cmd(1, &["GET", "s"]),
            Cmd(1, &["MGET", "nk", "s", "nk2"]),
            Cmd(1, &["EXISTS", "nk", "s", "nk"]),
            Cmd(1, &["TOUCH", "nk"]),
            Cmd(1, &["TYPE", "nk"]),
            Cmd(1, &["PTTL", "nk"]),
            Cmd(1, &["OBJECT", "ENCODING", "nk"]),
            Cmd(1, &["DUMP", "nk"]),
            Cmd(1, &["STRLEN", "nk"]),
            Cmd(1, &["GETRANGE", "nk", "0", "1"]),
            Cmd(1, &["GETEX", "nk", "PERSIST"]),
            Cmd(1, &["GETDEL", "nk"]),
            Cmd(1, &["GETSET", "fresh", "v"]),
            Cmd(1, &["LCS", "nk", "s"]),
            Cmd(1, &["COPY", "nk", "x"]),
            Cmd(1, &["APPEND", "nk3", "x"]),
            Cmd(1, &["LLEN", "nk"]),
            Cmd(1, &["LRANGE", "nk", "0", "-1"]),
            Cmd(1, &["LPOS", "nk", "a"]),
            Cmd(1, &["LPOP", "nk"]),
            Cmd(1, &["HGET", "nk", "f"]),
            Cmd(1, &["HGET", "h", "nofield"]),
            Cmd(1, &["HMGET", "nk", "f"]),
            Cmd(1, &["HSCAN", "nk", "0"]),
            Cmd(1, &["HINCRBY", "nk4", "f", "1"]),
            Cmd(1, &["SMEMBERS", "nk"]),
            Cmd(1, &["SISMEMBER", "nk", "a"]),
            Cmd(1, &["SINTER", "st", "nk"]),
            Cmd(1, &["SUNIONSTORE", "sd", "nk", "st"]),
            Cmd(1, &["SDIFFSTORE", "sd", "st", "nk"]),
            Cmd(1, &["SREM", "nk", "a"]),
            Cmd(1, &["ZSCORE", "nk", "a"]),
            Cmd(1, &["ZRANGE", "nk", "0", "-1"]),
            Cmd(1, &["ZUNIONSTORE", "zd", "2", "nk", "z"]),
            Cmd(1, &["ZINTERCARD", "2", "nk", "z"]),
            Cmd(1, &["ZPOPMIN", "nk"]),
            Cmd(1, &["SORT", "nk"]),
            Cmd(1, &["SORT", "l", "BY", "nosuch_*", "GET", "ng_*"]),
            Cmd(1, &["EVAL", "return redis.call('GET', KEYS[1])", "1", "nk"]),
            // Expired on access or by the active cycle: `expired` comes
            // first either way.
            Cmd(1, &["SET", "e", "1", "PX", "100"]),
            Sleep(300),
            Cmd(1, &["GET", "e"]),
            Cmd(1, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
            Cmd(1, &["GET", "nk"]),
            Cmd(1, &["CONFIG", "SET", "notify-keyspace-events", ""]),
        ],
        &[],
    );
}

#[test]
fn collection_notifications_match_redis() {
    compare(
        3,
        &[
            Cmd(2, &["CONFIG", "SET", "notify-keyspace-events", "KEAn"]),
            Cmd(0, &["PSUBSCRIBE", "__key*__:*"]),
            // Lists.
            Cmd(2, &["LPUSH", "l", "a", "b"]),
            Cmd(2, &["RPUSH", "l", "c", "d", "e", "f"]),
            Cmd(2, &["LPUSHX", "l", "x"]),
            Cmd(2, &["RPUSHX", "l", "y"]),
            Cmd(2, &["LPUSHX", "none", "x"]),
            Cmd(2, &["LINSERT", "l", "BEFORE", "c", "i"]),
            Cmd(2, &["LINSERT", "l", "BEFORE", "nope", "i"]),
            Cmd(2, &["LSET", "l", "0", "s"]),
            Cmd(2, &["LREM", "l", "0", "i"]),
            Cmd(2, &["LREM", "l", "0", "nope"]),
            Cmd(2, &["LPOP", "l"]),
            Cmd(2, &["RPOP", "l", "2"]),
            Cmd(2, &["LPOP", "l", "0"]),
            Cmd(2, &["LTRIM", "l", "0", "-1"]),
            Cmd(2, &["LMOVE", "l", "l2", "LEFT", "RIGHT"]),
            Cmd(2, &["RPOPLPUSH", "l", "l2"]),
            Cmd(2, &["LMOVE", "l2", "l2", "RIGHT", "LEFT"]),
            Cmd(2, &["LMPOP", "2", "none", "l", "LEFT", "COUNT", "5"]),
            Cmd(2, &["LTRIM", "l2", "5", "6"]),
            Cmd(2, &["RPUSH", "l", "a", "b"]),
            Cmd(2, &["LREM", "l", "0", "a"]),
            Cmd(2, &["LREM", "l", "0", "b"]),
            // Blocked clients served by a push.
            Send(1, &["BLPOP", "bl", "0"]),
            Sleep(100),
            Cmd(2, &["RPUSH", "bl", "v"]),
            Send(1, &["BLMOVE", "bl", "bdst", "RIGHT", "LEFT", "0"]),
            Sleep(100),
            Cmd(2, &["LPUSH", "bl", "w"]),
            Send(1, &["BLMPOP", "0", "1", "bl", "RIGHT", "COUNT", "3"]),
            Sleep(100),
            Cmd(2, &["RPUSH", "bl", "1", "2"]),
            Send(1, &["BRPOPLPUSH", "bl", "bdst", "0"]),
            Sleep(100),
            Cmd(2, &["RPUSH", "bl", "3"]),
            Send(1, &["BRPOP", "bl", "0"]),
            Sleep(100),
            Cmd(2, &["RPUSH", "bl", "4", "5"]),
            Cmd(2, &["DEL", "bl", "bdst"]),
            // Hashes.
            Cmd(2, &["HSET", "h", "a", "1", "b", "2"]),
            Cmd(2, &["HSET", "h", "a", "3"]),
            Cmd(2, &["HMSET", "h", "c", "3"]),
            Cmd(2, &["HSETNX", "h", "a", "x"]),
            Cmd(2, &["HSETNX", "h", "d", "x"]),
            Cmd(2, &["HSETNX", "h2", "d", "x"]),
            Cmd(2, &["HINCRBY", "h", "a", "5"]),
            Cmd(2, &["HINCRBY", "h3", "a", "5"]),
            Cmd(2, &["HINCRBY", "h", "d", "5"]),
            Cmd(2, &["HINCRBYFLOAT", "h", "a", "1.5"]),
            Cmd(2, &["HINCRBYFLOAT", "h4", "a", "1.5"]),
            Cmd(2, &["HDEL", "h", "a", "nope"]),
            Cmd(2, &["HDEL", "h", "nope"]),
            Cmd(2, &["HDEL", "h", "b", "c", "d"]),
            Cmd(2, &["DEL", "h2", "h3", "h4"]),
            // Sets.
            Cmd(2, &["SADD", "s", "1", "2", "3", "4"]),
            Cmd(2, &["SADD", "s", "1"]),
            Cmd(2, &["SADD", "t", "3", "4", "5"]),
            Cmd(2, &["SREM", "s", "1", "nope"]),
            Cmd(2, &["SREM", "s", "nope"]),
            Cmd(2, &["SMOVE", "s", "t", "2"]),
            Cmd(2, &["SMOVE", "s", "t", "3"]),
            Cmd(2, &["SMOVE", "s", "t", "nope"]),
            Cmd(2, &["SMOVE", "s", "u", "4"]),
            Cmd(2, &["SMOVE", "t", "t", "5"]),
            Cmd(2, &["SINTERSTORE", "i", "t", "t"]),
            Cmd(2, &["SINTERSTORE", "i", "t", "t"]),
            Cmd(2, &["SINTERSTORE", "i", "t", "missing"]),
            Cmd(2, &["SINTERSTORE", "i", "t", "missing"]),
            Cmd(2, &["SUNIONSTORE", "un", "t", "u"]),
            Cmd(2, &["SDIFFSTORE", "d", "t", "u"]),
            Cmd(2, &["SDIFFSTORE", "d", "t", "t"]),
            Cmd(2, &["SPOP", "u"]),
            Cmd(2, &["SPOP", "un", "0"]),
            Cmd(2, &["SPOP", "un", "10"]),
            Cmd(2, &["SADD", "p", "1", "2", "3"]),
            // Which members come is random: only what follows is compared.
            Quiet(2, &["SPOP", "p", "2"]),
            Cmd(2, &["SREM", "p", "1", "2", "3"]),
            // SORT ... STORE.
            Cmd(2, &["RPUSH", "src", "3", "1", "2"]),
            Cmd(2, &["SORT", "src", "STORE", "sorted"]),
            Cmd(2, &["SORT", "src", "STORE", "sorted"]),
            Cmd(2, &["SORT", "src", "LIMIT", "5", "1", "STORE", "sorted"]),
            Cmd(2, &["SORT", "src", "LIMIT", "5", "1", "STORE", "sorted"]),
            Cmd(2, &["FLUSHALL"]),
        ],
        &[],
    );
}

#[test]
fn ten_thousand_messages_arrive_in_order_while_others_work() {
    let server = ServerProcess::ferrokv(&[]);
    let port = server.port;
    let mut sub = Conn::new(port);
    sub.call(&[b"SUBSCRIBE", b"stream"]);
    const N: usize = 10_000;
    let publisher = std::thread::spawn(move || {
        let mut p = Conn::new(port);
        for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
            let mut batch = Vec::new();
            for i in chunk {
                batch.extend(encode(&[b"PUBLISH", b"stream", i.to_string().as_bytes()]));
            }
            p.s.write_all(&batch).expect("publish");
            for _ in chunk {
                assert_eq!(p.frame(), b":1\r\n");
            }
        }
    });
    let worker = std::thread::spawn(move || {
        let mut c = Conn::new(port);
        let mut slowest = Duration::ZERO;
        for i in 0..2000 {
            let start = Instant::now();
            let v = i.to_string();
            assert_eq!(c.call(&[b"SET", b"k", v.as_bytes()]), b"+OK\r\n");
            let got = c.call(&[b"GET", b"k"]);
            assert_eq!(got, format!("${}\r\n{v}\r\n", v.len()).into_bytes());
            slowest = slowest.max(start.elapsed());
        }
        slowest
    });
    for i in 0..N {
        let want = encode(&[b"message", b"stream", i.to_string().as_bytes()]);
        assert_eq!(sub.frame(), want, "message {i}");
    }
    publisher.join().expect("publisher");
    let slowest = worker.join().expect("worker");
    assert!(
        slowest < Duration::from_secs(1),
        "a GET/SET took {slowest:?} while messages were being published"
    );
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Publishers leave subscribers' wake-ups to their event loop, which
/// wakes them once its pass is over. Each message here is published alone
/// and must arrive before the next is sent, from either loop to
/// subscribers on both: a wake-up left behind would stall it.
#[test]
fn lone_messages_reach_subscribers_on_every_loop() {
    let server = ServerProcess::ferrokv(&["--server-threads", "2"]);
    let port = server.port;
    let mut subs: Vec<Conn> = (0..2).map(|_| Conn::new(port)).collect();
    for s in subs.iter_mut() {
        s.call(&[b"SUBSCRIBE", b"lone"]);
    }
    let mut pubs: Vec<Conn> = (0..2).map(|_| Conn::new(port)).collect();
    // Dealt in turn: each pair has one connection on each loop.
    let mut admin = server.connection();
    let counts = common::wait_for_loops(&mut admin, |c| c[0] >= 2 && c[1] >= 2);
    assert!(counts[0] >= 2 && counts[1] >= 2, "{counts:?}");
    for i in 0..200 {
        let body = i.to_string();
        let p = &mut pubs[i % 2];
        assert_eq!(p.call(&[b"PUBLISH", b"lone", body.as_bytes()]), b":2\r\n");
        for s in subs.iter_mut() {
            assert_eq!(s.frame(), encode(&[b"message", b"lone", body.as_bytes()]));
        }
    }
}

#[test]
fn subscriber_that_never_reads_is_disconnected_at_its_limit() {
    let server = ServerProcess::ferrokv(&["--client-output-buffer-limit", "pubsub 4mb 1mb 60"]);
    let mut ctl = Conn::new(server.port);
    assert_eq!(
        ctl.call(&[b"CONFIG", b"GET", b"client-output-buffer-limit"]),
        encode(&[
            b"client-output-buffer-limit",
            b"normal 0 0 0 slave 268435456 67108864 60 pubsub 4194304 1048576 60"
        ])
    );
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    slow.write_all(&encode(&[b"SUBSCRIBE", b"flood"]))
        .expect("subscribe");
    let deadline = Instant::now() + TIMEOUT;
    while ctl.call(&[b"PUBSUB", b"NUMSUB", b"flood"]) != encode_numsub(1) {
        assert!(Instant::now() < deadline, "subscription not seen");
    }
    let before = rss_kb(server.pid());
    let payload = vec![b'x'; 64 * 1024];
    let mut receivers = Vec::new();
    // 64 MB in total: sixteen times the hard limit.
    for _ in 0..1024 {
        let r = ctl.call(&[b"PUBLISH", b"flood", &payload]);
        receivers.push(r);
    }
    assert!(
        receivers.last() == Some(&b":0\r\n".to_vec()),
        "the slow subscriber was still subscribed after 64 MB"
    );
    let growth = rss_kb(server.pid()).saturating_sub(before);
    assert!(
        growth < 32 * 1024,
        "server memory grew by {growth} kB for one slow subscriber"
    );
    assert_eq!(
        ctl.call(&[b"PUBSUB", b"NUMSUB", b"flood"]),
        encode_numsub(0)
    );
    let list = ctl.call(&[b"CLIENT", b"LIST"]);
    assert!(!String::from_utf8_lossy(&list).contains("flags=P"));
    // Its connection was closed: reading ends with EOF after whatever the
    // kernel had buffered.
    slow.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut sink = vec![0u8; 1 << 20];
    loop {
        match slow.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("slow subscriber not disconnected: {e}"),
        }
    }
}

fn encode_numsub(n: i64) -> Vec<u8> {
    format!("*2\r\n$5\r\nflood\r\n:{n}\r\n").into_bytes()
}

#[test]
fn disconnected_subscribers_leave_nothing_behind() {
    let server = ServerProcess::ferrokv(&[]);
    let mut ctl = Conn::new(server.port);
    {
        let mut subs: Vec<Conn> = (0..50).map(|_| Conn::new(server.port)).collect();
        for (i, s) in subs.iter_mut().enumerate() {
            s.call(&[b"SUBSCRIBE", b"shared", format!("own-{i}").as_bytes()]);
            s.frame();
            s.call(&[b"PSUBSCRIBE", b"sh*"]);
            s.call(&[b"SSUBSCRIBE", b"shard"]);
        }
        assert_eq!(ctl.call(&[b"PUBLISH", b"shared", b"x"]), b":100\r\n");
        let info = ctl.call(&[b"INFO", b"stats"]);
        let info = String::from_utf8_lossy(&info);
        assert!(info.contains("pubsub_channels:51\r\n"), "{info}");
        assert!(info.contains("pubsub_patterns:1\r\n"), "{info}");
        assert!(info.contains("pubsubshard_channels:1\r\n"), "{info}");
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let numsub = ctl.call(&[b"PUBSUB", b"NUMSUB", b"shared"]);
        let numpat = ctl.call(&[b"PUBSUB", b"NUMPAT"]);
        let shard = ctl.call(&[b"PUBSUB", b"SHARDNUMSUB", b"shard"]);
        if numsub == b"*2\r\n$6\r\nshared\r\n:0\r\n"
            && numpat == b":0\r\n"
            && shard == b"*2\r\n$5\r\nshard\r\n:0\r\n"
        {
            break;
        }
        assert!(Instant::now() < deadline, "subscriptions left behind");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ctl.call(&[b"PUBSUB", b"CHANNELS"]), b"*0\r\n");
    assert_eq!(ctl.call(&[b"PUBLISH", b"shared", b"x"]), b":0\r\n");
}

/// PUBLISH to 10,000 subscribers delivers to each of them, and other
/// clients keep being served while the publishes go on; when the
/// subscribers leave, the client count returns to its baseline.
#[test]
fn publishing_to_ten_thousand_subscribers_leaves_others_served() {
    const SUBSCRIBERS: usize = 10_000;
    const MESSAGES: usize = 20;
    // Room for the subscribers and the three other clients.
    let server = ServerProcess::ferrokv(&["--maxclients", "10100"]);
    let port = server.port;
    let mut admin = Conn::new(port);
    let baseline = connected_clients(&mut admin);
    let mut subs: Vec<Conn> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut c = Conn::new(port);
            c.send(&[b"SUBSCRIBE", b"crowd"]);
            c
        })
        .collect();
    for c in subs.iter_mut() {
        assert_eq!(c.frame(), b"*3\r\n$9\r\nsubscribe\r\n$5\r\ncrowd\r\n:1\r\n");
    }
    let publishing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pinger = {
        let publishing = publishing.clone();
        std::thread::spawn(move || {
            let mut c = Conn::new(port);
            let mut served = 0;
            while publishing.load(std::sync::atomic::Ordering::SeqCst) {
                assert_eq!(c.call(&[b"PING"]), b"+PONG\r\n");
                served += 1;
            }
            served
        })
    };
    let mut publisher = Conn::new(port);
    for i in 0..MESSAGES {
        let payload = format!("message {i:04} {}", "x".repeat(80));
        let reply = publisher.call(&[b"PUBLISH", b"crowd", payload.as_bytes()]);
        assert_eq!(reply, format!(":{SUBSCRIBERS}\r\n").into_bytes());
    }
    publishing.store(false, std::sync::atomic::Ordering::SeqCst);
    let served = pinger.join().expect("pinger");
    assert!(served > 0, "no other client was served while publishing");
    for c in subs.iter_mut() {
        for i in 0..MESSAGES {
            let f = c.frame();
            let expected = format!("message {i:04} ");
            assert!(
                f.windows(expected.len()).any(|w| w == expected.as_bytes()),
                "{}",
                String::from_utf8_lossy(&f)
            );
        }
    }
    // QUIT, so that the server closes first and the TIME_WAIT sockets are
    // its own, not 10,000 of this machine's ephemeral ports.
    for c in subs.iter_mut() {
        c.send(&[b"QUIT"]);
    }
    for c in subs.iter_mut() {
        assert_eq!(c.frame(), b"+OK\r\n");
    }
    drop(subs);
    drop(publisher);
    let deadline = Instant::now() + Duration::from_secs(10);
    while connected_clients(&mut admin) != baseline {
        if Instant::now() >= deadline {
            let list = admin.call(&[b"CLIENT", b"LIST"]);
            panic!(
                "subscribers were not released:\n{}",
                String::from_utf8_lossy(&list)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connected_clients(c: &mut Conn) -> usize {
    let info = c.call(&[b"INFO", b"clients"]);
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("connected_clients")
}
