//! Blocking list commands with real clients: BLPOP/BRPOP/BLMOVE/BLMPOP
//! served by later writes from other connections, FIFO order among
//! waiters, MULTI/EXEC, chains of BLMOVE, timeouts and disconnects.
//!
//! Replies are compared as raw RESP bytes. A blocked client is waited for
//! through INFO's blocked_clients before the write that should serve it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::ServerProcess;

/// A raw RESP2 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(server: &ServerProcess) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        Conn {
            writer: s.try_clone().expect("clone"),
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, cmd: &str) {
        let words: Vec<&str> = cmd.split(' ').collect();
        let mut out = format!("*{}\r\n", words.len());
        for w in words {
            out.push_str(&format!("${}\r\n{}\r\n", w.len(), w));
        }
        self.writer.write_all(out.as_bytes()).expect("send");
    }

    /// Reads one complete reply and returns its bytes.
    fn read(&mut self) -> String {
        let mut out = String::new();
        self.read_into(&mut out);
        out
    }

    fn read_into(&mut self, out: &mut String) {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read reply");
        assert!(line.ends_with("\r\n"), "truncated reply {line:?}");
        out.push_str(&line);
        let n: i64 = line[1..line.len() - 2].parse().unwrap_or(0);
        match line.as_bytes()[0] {
            b'$' if n >= 0 => {
                let mut data = vec![0; n as usize + 2];
                self.reader.read_exact(&mut data).expect("read bulk");
                out.push_str(&String::from_utf8_lossy(&data));
            }
            b'*' => {
                for _ in 0..n.max(0) {
                    self.read_into(out);
                }
            }
            _ => {}
        }
    }

    fn call(&mut self, cmd: &str) -> String {
        self.send(cmd);
        self.read()
    }
}

/// INFO clients' blocked_clients.
fn blocked_clients(server: &ServerProcess) -> usize {
    let info = Conn::open(server).call("INFO clients");
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO clients has blocked_clients")
}

/// Waits until exactly `n` clients are blocked.
fn wait_blocked(server: &ServerProcess, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocked_clients(server) != n {
        assert!(
            Instant::now() < deadline,
            "never reached {n} blocked clients"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Sends a blocking command on a new connection and returns a thread that
/// yields its reply (and how long it took).
fn blocked(server: &ServerProcess, cmd: &str) -> thread::JoinHandle<(String, Duration)> {
    let mut c = Conn::open(server);
    let cmd = cmd.to_string();
    let before = blocked_clients(server);
    let h = thread::spawn(move || {
        let start = Instant::now();
        c.send(&cmd);
        let r = c.read();
        (r, start.elapsed())
    });
    wait_blocked(server, before + 1);
    h
}

fn reply(h: thread::JoinHandle<(String, Duration)>) -> String {
    h.join().expect("blocked client thread").0
}

fn pair(key: &str, value: &str) -> String {
    format!(
        "*2\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
        key.len(),
        value.len()
    )
}

#[test]
fn blpop_is_served_by_a_later_push() {
    let s = ServerProcess::ferrokv(&[]);
    let mut w = Conn::open(&s);
    let a = blocked(&s, "BLPOP k 0");
    assert_eq!(w.call("LPUSH k v"), ":1\r\n");
    assert_eq!(reply(a), pair("k", "v"));
    assert_eq!(w.call("LLEN k"), ":0\r\n");

    let b = blocked(&s, "BRPOP k 0");
    assert_eq!(w.call("RPUSH k x y"), ":2\r\n");
    assert_eq!(reply(b), pair("k", "y"));
    assert_eq!(w.call("LRANGE k 0 -1"), "*1\r\n$1\r\nx\r\n");
}

#[test]
fn waiters_on_one_key_are_served_oldest_first() {
    let s = ServerProcess::ferrokv(&[]);
    let mut w = Conn::open(&s);
    let first = blocked(&s, "BLPOP k 0");
    let second = blocked(&s, "BLPOP k 0");
    let third = blocked(&s, "BLPOP k 0");
    // One element serves only the oldest; the others keep waiting.
    assert_eq!(w.call("RPUSH k 1"), ":1\r\n");
    assert_eq!(reply(first), pair("k", "1"));
    assert_eq!(w.call("RPUSH k 2 3"), ":2\r\n");
    assert_eq!(reply(second), pair("k", "2"));
    assert_eq!(reply(third), pair("k", "3"));
    assert_eq!(w.call("LLEN k"), ":0\r\n");
}

#[test]
fn a_client_on_several_keys_takes_the_first_ready_one() {
    let s = ServerProcess::ferrokv(&[]);
    let mut w = Conn::open(&s);
    let a = blocked(&s, "BLPOP k1 k2 k3 0");
    assert_eq!(w.call("RPUSH k2 v"), ":1\r\n");
    assert_eq!(reply(a), pair("k2", "v"));

    // With data already present, argument order decides.
    w.call("RPUSH k3 c");
    w.call("RPUSH k2 b");
    let mut c = Conn::open(&s);
    assert_eq!(c.call("BLPOP k1 k2 k3 0"), pair("k2", "b"));
    assert_eq!(c.call("BLMPOP 0 3 k1 k2 k3 LEFT COUNT 5"), {
        "*2\r\n$2\r\nk3\r\n*1\r\n$1\r\nc\r\n".to_string()
    });
}

#[test]
fn a_push_inside_multi_serves_the_waiter_after_exec() {
    let s = ServerProcess::ferrokv(&[]);
    let mut w = Conn::open(&s);
    let a = blocked(&s, "BLPOP k 0");
    // Pushed and popped again within one transaction: nothing is left to
    // serve, so the waiter keeps waiting.
    assert_eq!(w.call("MULTI"), "+OK\r\n");
    assert_eq!(w.call("LPUSH k gone"), "+QUEUED\r\n");
    assert_eq!(w.call("LPOP k"), "+QUEUED\r\n");
    assert_eq!(w.call("EXEC"), "*2\r\n:1\r\n$4\r\ngone\r\n");
    assert_eq!(blocked_clients(&s), 1);
    assert!(!a.is_finished());

    assert_eq!(w.call("MULTI"), "+OK\r\n");
    assert_eq!(w.call("LPUSH k x"), "+QUEUED\r\n");
    assert_eq!(w.call("LPUSH k y"), "+QUEUED\r\n");
    assert_eq!(w.call("EXEC"), "*2\r\n:1\r\n:2\r\n");
    // Served once the whole transaction had run: the head is then "y".
    assert_eq!(reply(a), pair("k", "y"));
    assert_eq!(w.call("LRANGE k 0 -1"), "*1\r\n$1\r\nx\r\n");
}

#[test]
fn lmove_into_a_key_wakes_its_waiter() {
    let s = ServerProcess::ferrokv(&[]);
    let mut w = Conn::open(&s);
    let a = blocked(&s, "BRPOP dst 0");
    w.call("RPUSH src a b");
    assert_eq!(w.call("LMOVE src dst RIGHT LEFT"), "$1\r\nb\r\n");
    assert_eq!(reply(a), pair("dst", "b"));
    assert_eq!(w.call("LLEN dst"), ":0\r\n");
}

#[test]
fn blmove_waiters_chain() {
    let s = ServerProcess::ferrokv(&[]);
    let mut w = Conn::open(&s);
    let first = blocked(&s, "BLMOVE a b LEFT RIGHT 0");
    let second = blocked(&s, "BRPOPLPUSH b c 0");
    let last = blocked(&s, "BLPOP c 0");
    assert_eq!(w.call("RPUSH a v"), ":1\r\n");
    assert_eq!(reply(first), "$1\r\nv\r\n");
    assert_eq!(reply(second), "$1\r\nv\r\n");
    assert_eq!(reply(last), pair("c", "v"));
    for key in ["a", "b", "c"] {
        assert_eq!(w.call(&format!("LLEN {key}")), ":0\r\n");
    }
}

#[test]
fn blmove_served_onto_a_wrong_type_fails_and_keeps_the_element() {
    let s = ServerProcess::ferrokv(&[]);
    let mut w = Conn::open(&s);
    let a = blocked(&s, "BLMOVE src dst LEFT LEFT 0");
    w.call("SET dst string");
    assert_eq!(w.call("RPUSH src v"), ":1\r\n");
    assert_eq!(
        reply(a),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    assert_eq!(w.call("LRANGE src 0 -1"), "*1\r\n$1\r\nv\r\n");
}

#[test]
fn timeouts_are_floats_and_reply_a_null_array() {
    let s = ServerProcess::ferrokv(&[]);
    for cmd in [
        "BLPOP k 0.1",
        "BRPOP k1 k2 0.1",
        "BLMOVE k d LEFT LEFT 0.1",
        "BRPOPLPUSH k d 0.1",
        "BLMPOP 0.1 2 k1 k2 RIGHT COUNT 2",
    ] {
        let mut c = Conn::open(&s);
        let start = Instant::now();
        // Redis 7.0 times out every blocked list command with a null
        // array, BLMOVE and BRPOPLPUSH included.
        assert_eq!(c.call(cmd), "*-1\r\n", "{cmd}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(90) && took < Duration::from_secs(3),
            "{cmd} took {took:?}"
        );
        // The connection goes on normally afterwards.
        assert_eq!(c.call("PING"), "+PONG\r\n");
    }
}

#[test]
fn a_disconnected_waiter_loses_no_element() {
    let s = ServerProcess::ferrokv(&[]);
    let mut gone = Conn::open(&s);
    gone.send("BLPOP k 0");
    wait_blocked(&s, 1);
    drop(gone);
    wait_blocked(&s, 0);
    let mut w = Conn::open(&s);
    assert_eq!(w.call("LPUSH k v"), ":1\r\n");
    assert_eq!(w.call("LRANGE k 0 -1"), "*1\r\n$1\r\nv\r\n");
    // A live waiter behind the gone one is still served.
    assert_eq!(w.call("DEL k"), ":1\r\n");
    let mut gone = Conn::open(&s);
    gone.send("BLPOP k 0");
    wait_blocked(&s, 1);
    let live = blocked(&s, "BLPOP k 0");
    drop(gone);
    wait_blocked(&s, 1);
    assert_eq!(w.call("RPUSH k x"), ":1\r\n");
    assert_eq!(reply(live), pair("k", "x"));
    wait_blocked(&s, 0);
}

#[test]
fn a_waiter_is_served_only_from_a_list() {
    let s = ServerProcess::ferrokv(&[]);
    let mut w = Conn::open(&s);
    let a = blocked(&s, "BLPOP k 0");
    let b = blocked(&s, "BLMOVE k d LEFT LEFT 0");
    // A sorted set under the key wakes nobody here (Redis 7.0 serves a
    // key only to waiters of its type).
    assert_eq!(w.call("ZADD k 1 m"), ":1\r\n");
    assert_eq!(blocked_clients(&s), 2);
    assert_eq!(w.call("DEL k"), ":1\r\n");
    assert_eq!(w.call("RPUSH k x y"), ":2\r\n");
    assert_eq!(reply(a), pair("k", "x"));
    assert_eq!(reply(b), "$1\r\ny\r\n");
}

/// CLIENT UNBLOCK ends a wait with the timeout reply or an UNBLOCKED error,
/// leaves the connection usable and no waiter behind; the same flow runs
/// against redis-server to pin the replies.
#[test]
fn client_unblock_releases_a_waiter() {
    for s in [ServerProcess::redis(&[]), ServerProcess::ferrokv(&[])] {
        let mut admin = Conn::open(&s);
        for (how, want) in [
            ("TIMEOUT", "*-1\r\n"),
            (
                "ERROR",
                "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n",
            ),
        ] {
            let mut c = Conn::open(&s);
            let id = c.call("CLIENT ID");
            let id = id.trim_start_matches(':').trim().to_string();
            let h = thread::spawn(move || {
                c.send("BLPOP k 0");
                let r = c.read();
                (r, c)
            });
            wait_blocked(&s, 1);
            assert_eq!(admin.call(&format!("CLIENT UNBLOCK {id} {how}")), ":1\r\n");
            let (r, mut c) = h.join().expect("blocked client thread");
            assert_eq!(r, want);
            assert_eq!(blocked_clients(&s), 0);
            assert_eq!(c.call("PING"), "+PONG\r\n");
            assert_eq!(admin.call(&format!("CLIENT UNBLOCK {id}")), ":0\r\n");
        }
        // Nobody waits any more: a pushed element stays in the list.
        assert_eq!(admin.call("LPUSH k v"), ":1\r\n");
        assert_eq!(admin.call("LLEN k"), ":1\r\n");
    }
}
