//! Scripts under concurrency: atomic check-and-decrement (flash sale), a
//! lease lock released by compare-and-delete, BUSY and SCRIPT KILL of a
//! long read-only script, the same sale done with WATCH/MULTI/EXEC,
//! pipelined scripts and transactions over several event loops, and
//! FUNCTION DUMP/RESTORE payloads exchanged with redis-server.

mod common;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_for_loops, ServerProcess};

const STOCK: i64 = 1_000;
const BUYERS: usize = 200;

const BUY: &str = r#"
local stock = tonumber(redis.call('GET', KEYS[1]))
if stock and stock > 0 then
  redis.call('DECR', KEYS[1])
  return 1
end
return 0
"#;

/// Runs `BUYERS` threads that each call `buy` until it reports the stock
/// is gone; returns how many purchases succeeded.
fn sale(server: &ServerProcess, buy: fn(&mut redis::Connection) -> Option<bool>) -> usize {
    let mut con = server.connection();
    let _: () = redis::cmd("SET")
        .arg("stock")
        .arg(STOCK)
        .query(&mut con)
        .unwrap();
    let sold = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..BUYERS)
        .map(|_| {
            let client = server.client();
            let sold = sold.clone();
            std::thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                while let Some(bought) = buy(&mut con) {
                    if bought {
                        sold.fetch_add(1, SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let left: i64 = redis::cmd("GET").arg("stock").query(&mut con).unwrap();
    assert_eq!(left, 0, "stock must end at exactly zero");
    sold.load(SeqCst)
}

/// One purchase with the Lua script: Some(true) bought, None sold out.
fn buy_with_script(con: &mut redis::Connection) -> Option<bool> {
    let bought: i64 = redis::cmd("EVAL")
        .arg(BUY)
        .arg(1)
        .arg("stock")
        .query(con)
        .unwrap();
    (bought == 1).then_some(true)
}

#[test]
fn flash_sale_with_a_script_sells_exactly_the_stock() {
    let server = ServerProcess::ferrokv(&[]);
    assert_eq!(sale(&server, buy_with_script), STOCK as usize);
}

/// One purchase with optimistic locking, retried until EXEC succeeds.
fn buy_with_transaction(con: &mut redis::Connection) -> Option<bool> {
    loop {
        let _: () = redis::cmd("WATCH").arg("stock").query(con).unwrap();
        let stock: i64 = redis::cmd("GET").arg("stock").query(con).unwrap();
        if stock <= 0 {
            let _: () = redis::cmd("UNWATCH").query(con).unwrap();
            return None;
        }
        let result: Option<(i64,)> = redis::pipe()
            .atomic()
            .cmd("DECR")
            .arg("stock")
            .query(con)
            .unwrap();
        if let Some((left,)) = result {
            assert!(left >= 0, "stock went negative: {left}");
            return Some(true);
        }
    }
}

#[test]
fn flash_sale_with_watch_multi_exec_sells_exactly_the_stock() {
    let server = ServerProcess::ferrokv(&[]);
    assert_eq!(sale(&server, buy_with_transaction), STOCK as usize);
}

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

#[test]
fn lease_lock_has_at_most_one_holder_and_expired_leases_are_taken_over() {
    let server = ServerProcess::ferrokv(&[]);
    let rounds = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicI64::new(0));
    let threads: Vec<_> = (0..16)
        .map(|id| {
            let client = server.client();
            let (rounds, max_seen) = (rounds.clone(), max_seen.clone());
            std::thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                let token = format!("holder-{id}");
                let mut held = 0;
                let deadline = Instant::now() + Duration::from_secs(20);
                while held < 20 && Instant::now() < deadline {
                    let got: Option<String> = redis::cmd("SET")
                        .arg("lock")
                        .arg(&token)
                        .arg("NX")
                        .arg("PX")
                        .arg(10_000)
                        .query(&mut con)
                        .unwrap();
                    if got.is_none() {
                        continue;
                    }
                    let holders: i64 = redis::cmd("INCR").arg("holders").query(&mut con).unwrap();
                    max_seen.fetch_max(holders, SeqCst);
                    assert_eq!(holders, 1, "two clients held the lock at once");
                    let _: i64 = redis::cmd("DECR").arg("holders").query(&mut con).unwrap();
                    let released: i64 = redis::cmd("EVAL")
                        .arg(RELEASE)
                        .arg(1)
                        .arg("lock")
                        .arg(&token)
                        .query(&mut con)
                        .unwrap();
                    assert_eq!(released, 1, "the holder's release must delete its lease");
                    held += 1;
                    rounds.fetch_add(1, SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(max_seen.load(SeqCst), 1);
    assert_eq!(rounds.load(SeqCst), 16 * 20);

    // A crashed holder's lease expires and another client takes it over;
    // the old holder's late release must not delete the new lease.
    let mut con = server.connection();
    let _: () = redis::cmd("SET")
        .arg("lock")
        .arg("crashed")
        .arg("NX")
        .arg("PX")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let early: Option<String> = redis::cmd("SET")
        .arg("lock")
        .arg("next")
        .arg("NX")
        .arg("PX")
        .arg(10_000)
        .query(&mut con)
        .unwrap();
    assert!(early.is_none());
    std::thread::sleep(Duration::from_millis(200));
    let taken: Option<String> = redis::cmd("SET")
        .arg("lock")
        .arg("next")
        .arg("NX")
        .arg("PX")
        .arg(10_000)
        .query(&mut con)
        .unwrap();
    assert_eq!(taken.as_deref(), Some("OK"));
    let late: i64 = redis::cmd("EVAL")
        .arg(RELEASE)
        .arg(1)
        .arg("lock")
        .arg("crashed")
        .query(&mut con)
        .unwrap();
    assert_eq!(late, 0);
    let holder: String = redis::cmd("GET").arg("lock").query(&mut con).unwrap();
    assert_eq!(holder, "next");
}

fn error_text(r: redis::RedisResult<redis::Value>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[test]
fn busy_script_is_reported_and_killed() {
    let server = ServerProcess::ferrokv(&["--busy-reply-threshold", "100"]);
    let client = server.client();
    let runner = std::thread::spawn(move || {
        let mut con = client.get_connection().unwrap();
        redis::cmd("EVAL")
            .arg("local i = 0 while true do i = i + 1 end")
            .arg(0)
            .query::<redis::Value>(&mut con)
    });
    // Every other client, whatever its event loop, is told the server is
    // busy once the threshold has passed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut others: Vec<_> = (0..4).map(|_| server.connection()).collect();
    loop {
        let r = redis::cmd("GET")
            .arg("x")
            .query::<redis::Value>(&mut others[0]);
        if let Err(e) = &r {
            if e.to_string().contains("BUSY") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no BUSY reply: {r:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for con in others.iter_mut() {
        let text = error_text(redis::cmd("PING").query(con));
        assert!(text.contains("BUSY"), "{text}");
        assert!(
            text.contains(
                "Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
            ),
            "{text}"
        );
    }
    let text = error_text(redis::cmd("FUNCTION").arg("KILL").query(&mut others[1]));
    assert!(text.contains("BUSY"), "{text}");
    let ok: String = redis::cmd("SCRIPT")
        .arg("KILL")
        .query(&mut others[2])
        .unwrap();
    assert_eq!(ok, "OK");
    let killed = runner.join().unwrap();
    let text = error_text(killed);
    assert!(
        text.contains("Script killed by user with SCRIPT KILL..."),
        "{text}"
    );
    // Nothing is left held: everyone is served again.
    for con in others.iter_mut() {
        let pong: String = redis::cmd("PING").query(con).unwrap();
        assert_eq!(pong, "PONG");
        let _: () = redis::cmd("SET").arg("after").arg("1").query(con).unwrap();
    }
    let text = error_text(redis::cmd("SCRIPT").arg("KILL").query(&mut others[3]));
    assert!(
        text.contains("No scripts in execution right now."),
        "{text}"
    );
}

#[test]
fn a_script_that_wrote_cannot_be_killed_but_shutdown_nosave_stops_the_server() {
    let mut server = ServerProcess::ferrokv(&["--busy-reply-threshold", "100"]);
    let client = server.client();
    let (connected, started) = std::sync::mpsc::channel();
    let _runner = std::thread::spawn(move || {
        let mut con = client.get_connection().unwrap();
        connected.send(()).unwrap();
        let _ = redis::cmd("EVAL")
            .arg("redis.call('SET', 'w', '1') while true do end")
            .arg(0)
            .query::<redis::Value>(&mut con);
    });
    started.recv().unwrap();
    // A script that has written keeps the event loop it started on, so
    // this client connects once the script is surely running: a new
    // connection must always get through (to the overflow loop if need
    // be), whatever loop it would have been dealt to.
    std::thread::sleep(Duration::from_millis(300));
    let mut con = server.connection();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = redis::cmd("SCRIPT")
            .arg("KILL")
            .query::<redis::Value>(&mut con);
        match r {
            Err(e) if e.to_string().contains("UNKILLABLE") => break,
            other => assert!(Instant::now() < deadline, "no UNKILLABLE reply: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = error_text(redis::cmd("SHUTDOWN").query(&mut con));
    assert!(text.contains("BUSY"), "{text}");
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query::<redis::Value>(&mut con);
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
}

/// A script starts on the event loop that received it; one that runs past
/// its inline budget before doing anything others can see starts over on
/// the script thread. Its write then happens once, its reply is the full
/// run's, and the command is counted once.
#[test]
fn a_long_script_moves_to_the_script_thread_and_runs_once() {
    let server = ServerProcess::ferrokv(&["--busy-reply-threshold", "1000"]);
    let mut con = server.connection();
    let script = "local n = 0 for i = 1, 3000000 do n = n + i % 7 end \
                  redis.call('INCR', KEYS[1]) return n";
    for round in 1..=2 {
        let n: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg("counter")
            .query(&mut con)
            .unwrap();
        assert_eq!(n, (1..=3_000_000i64).map(|i| i % 7).sum::<i64>());
        let count: i64 = redis::cmd("GET").arg("counter").query(&mut con).unwrap();
        assert_eq!(count, round);
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    assert!(info.contains("cmdstat_eval:calls=2,"), "{info}");
}

/// Scripts and transactions sent in pipelines by clients spread over
/// several event loops: a connection keeps its gate across the requests
/// of one read, which must never let an exclusive request run beside
/// another loop's. A script's read-then-write of a counter loses updates
/// if two scripts interleave; a transaction's two INCRs must never be seen
/// apart, by a script or by an ordinary MGET.
#[test]
fn pipelined_scripts_and_transactions_stay_atomic_across_loops() {
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 100;
    const RMW: &str = "local v = tonumber(redis.call('GET', KEYS[1]) or '0') \
                       redis.call('SET', KEYS[1], v + 1) return v + 1";
    const SAME: &str = "return redis.call('GET', KEYS[1]) == redis.call('GET', KEYS[2]) and 1 or 0";
    let server = ServerProcess::ferrokv(&["--server-threads", "4"]);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let client = server.client();
            std::thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                for _ in 0..ROUNDS {
                    // An ordinary command first: the connection then holds
                    // its loop's gate shared when the scripts arrive.
                    let mut pipe = redis::pipe();
                    pipe.cmd("GET").arg("counter");
                    for _ in 0..3 {
                        pipe.cmd("EVAL").arg(RMW).arg(1).arg("counter");
                    }
                    pipe.cmd("MULTI")
                        .cmd("INCR")
                        .arg("a")
                        .cmd("INCR")
                        .arg("b")
                        .cmd("EXEC");
                    pipe.cmd("EVAL").arg(SAME).arg(2).arg("a").arg("b");
                    pipe.cmd("MGET").arg("a").arg("b");
                    let replies: Vec<redis::Value> = pipe.query(&mut con).unwrap();
                    assert_eq!(replies.len(), 10, "{replies:?}");
                    assert_eq!(replies[8], redis::Value::Int(1), "a and b seen apart");
                    let redis::Value::Array(ab) = &replies[9] else {
                        panic!("{replies:?}");
                    };
                    assert_eq!(ab[0], ab[1], "a and b seen apart by MGET");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = server.connection();
    let (counter, a, b): (usize, usize, usize) = redis::cmd("MGET")
        .arg("counter")
        .arg("a")
        .arg("b")
        .query(&mut con)
        .unwrap();
    assert_eq!(counter, CLIENTS * ROUNDS * 3, "a script's update was lost");
    assert_eq!((a, b), (CLIENTS * ROUNDS, CLIENTS * ROUNDS));
}

/// Connections that mostly run scripts gather on loop 0 and go back to
/// the loop they were dealt once they stop, taking everything with them:
/// the selected database, the name, an open transaction and a WATCH.
/// Counts return to the baseline when they close.
#[test]
fn script_heavy_clients_move_between_loops_with_their_state() {
    const CLIENTS: usize = 4;
    let server = ServerProcess::ferrokv(&["--server-threads", "2"]);
    let mut admin = server.connection();
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return redis.call('INCR', KEYS[1])")
        .query(&mut admin)
        .unwrap();
    let mut cons: Vec<_> = (0..CLIENTS).map(|_| server.connection()).collect();
    // Connecting sends nothing: wait until the server has them all.
    let start = wait_for_loops(&mut admin, |c| c.iter().sum::<usize>() == CLIENTS + 1);
    assert_eq!(start.iter().sum::<usize>(), CLIENTS + 1, "{start:?}");
    // Dealt round-robin: some of them start on loop 1.
    assert!(start[1] >= CLIENTS / 2, "{start:?}");
    for (i, con) in cons.iter_mut().enumerate() {
        let name = format!("client-{i}");
        let key = format!("counter:{i}");
        let _: () = redis::cmd("SELECT").arg(3).query(con).unwrap();
        let _: () = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(&name)
            .query(con)
            .unwrap();
        let _: () = redis::cmd("WATCH")
            .arg(format!("watched:{i}"))
            .query(con)
            .unwrap();
        // With SELECT, SETNAME and WATCH, 60 scripts and MULTI fill the
        // window: the move happens with the transaction open.
        for _ in 0..60 {
            let _: i64 = redis::cmd("EVALSHA")
                .arg(&sha)
                .arg(1)
                .arg(&key)
                .query(con)
                .unwrap();
        }
        let _: () = redis::cmd("MULTI").query(con).unwrap();
    }
    let gathered = wait_for_loops(&mut admin, |c| c[0] >= CLIENTS);
    assert!(
        gathered[0] >= CLIENTS,
        "script clients did not gather: {gathered:?}"
    );
    assert!(
        gathered[1] <= 1,
        "only the admin may stay on loop 1: {gathered:?}"
    );
    // The WATCHes came along: a change by another client aborts that
    // client's EXEC, and only its.
    let _: () = redis::cmd("SELECT").arg(3).query(&mut admin).unwrap();
    let _: () = redis::cmd("SET")
        .arg("watched:0")
        .arg(1)
        .query(&mut admin)
        .unwrap();
    for (i, con) in cons.iter_mut().enumerate() {
        let key = format!("counter:{i}");
        let (queued, exec): (String, Option<Vec<i64>>) = redis::pipe()
            .cmd("INCR")
            .arg(&key)
            .cmd("EXEC")
            .query(con)
            .unwrap();
        assert_eq!(queued, "QUEUED");
        let expected = (i != 0).then(|| vec![61]);
        assert_eq!(
            exec, expected,
            "client {i}: in database 3, aborted only by its WATCH"
        );
        let name: String = redis::cmd("CLIENT").arg("GETNAME").query(con).unwrap();
        assert_eq!(name, format!("client-{i}"));
    }
    for con in cons.iter_mut() {
        for _ in 0..2 * 64 {
            let _: Option<String> = redis::cmd("GET").arg("x").query(con).unwrap();
        }
    }
    let back = wait_for_loops(&mut admin, |c| c == start.as_slice());
    assert_eq!(back, start, "clients did not go back to their loops");
    drop(cons);
    let end = wait_for_loops(&mut admin, |c| c.iter().sum::<usize>() == 1);
    assert_eq!(end.iter().sum::<usize>(), 1, "{end:?}");
}

/// Fails on a request the server did not answer; error replies (RENAME of
/// a flushed key, BGSAVE already running) are answers.
fn answered(r: redis::RedisResult<redis::Value>) {
    if let Err(e) = &r {
        assert!(
            !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()),
            "no answer: {e}"
        );
    }
}

/// Transactions that lock only their keys' shards, run beside commands
/// that take whole databases (FLUSHDB, SWAPDB, DBSIZE), the exclusive gate
/// (BGSAVE, scripts), several keys (MSET, RENAME) and expiring keys, from
/// clients on four event loops. Every request must be answered: a lock
/// order broken anywhere would hang a client, and the read timeout turns
/// that into a failure.
#[test]
fn keyed_transactions_beside_whole_database_commands_never_deadlock() {
    const ROUNDS: usize = 150;
    let server = ServerProcess::ferrokv(&["--server-threads", "4"]);
    let workers: Vec<fn(&mut redis::Connection, usize)> = vec![
        |con, i| {
            let k = format!("t{}", i % 7);
            answered(
                redis::pipe()
                    .cmd("MULTI")
                    .cmd("INCR")
                    .arg(&k)
                    .cmd("MSET")
                    .arg("m1")
                    .arg(i)
                    .arg("m2")
                    .arg(i)
                    .cmd("RPUSH")
                    .arg("list")
                    .arg(i)
                    .cmd("EXEC")
                    .query(con),
            );
        },
        |con, i| {
            answered(
                redis::pipe()
                    .cmd("WATCH")
                    .arg("m1")
                    .cmd("MULTI")
                    .cmd("RENAME")
                    .arg("m2")
                    .arg("m3")
                    .cmd("SET")
                    .arg("px")
                    .arg(i)
                    .arg("PX")
                    .arg(1)
                    .cmd("EXEC")
                    .query(con),
            );
        },
        |con, i| {
            let cmd = match i % 4 {
                0 => redis::cmd("FLUSHDB"),
                1 => redis::cmd("SWAPDB").arg(0).arg(1).clone(),
                2 => redis::cmd("DBSIZE"),
                _ => redis::cmd("MSET").arg("t1").arg(1).arg("m1").arg(2).clone(),
            };
            answered(cmd.query(con));
        },
        |con, i| {
            answered(if i % 10 == 0 {
                redis::cmd("BGSAVE").query(con)
            } else {
                redis::cmd("EVAL")
                    .arg("return redis.call('INCR', KEYS[1])")
                    .arg(1)
                    .arg("t3")
                    .query(con)
            });
        },
    ];
    let threads: Vec<_> = workers
        .into_iter()
        .flat_map(|work| [work, work])
        .map(|work| {
            let client = server.client();
            std::thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                for i in 0..ROUNDS {
                    work(&mut con, i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client got no answer");
    }
    let mut con = server.connection();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

const LIB_A: &str = "#!lua name=liba\nredis.register_function('fa', function(keys, args) return 'a:' .. (args[1] or '') end)";
const LIB_B: &str = "#!lua name=libb\nredis.register_function{function_name='fb', callback=function() return 2 end, flags={'no-writes'}, description='b'}";

fn function(con: &mut redis::Connection, args: &[&[u8]]) -> redis::RedisResult<redis::Value> {
    let mut c = redis::cmd("FUNCTION");
    for a in args {
        c.arg(*a);
    }
    c.query(con)
}

fn dump(con: &mut redis::Connection) -> Vec<u8> {
    redis::cmd("FUNCTION").arg("DUMP").query(con).unwrap()
}

/// FUNCTION LIST WITHCODE of one library (Redis lists libraries in hash
/// order, so they are compared one by one).
fn listing(con: &mut redis::Connection, lib: &str) -> redis::Value {
    function(con, &[b"LIST", b"LIBRARYNAME", lib.as_bytes(), b"WITHCODE"]).unwrap()
}

#[test]
fn function_dump_and_restore_cross_servers() {
    let r = ServerProcess::redis(&[]);
    let f = ServerProcess::ferrokv(&[]);
    let (mut rc, mut fc) = (r.connection(), f.connection());
    for con in [&mut rc, &mut fc] {
        function(con, &[b"LOAD", LIB_A.as_bytes()]).unwrap();
    }
    // The same library serializes to the same bytes (LZF included), with
    // compression on and off, and so does no library at all.
    assert_eq!(dump(&mut fc), dump(&mut rc));
    for con in [&mut rc, &mut fc] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("rdbcompression")
            .arg("no")
            .query(con)
            .unwrap();
    }
    assert_eq!(dump(&mut fc), dump(&mut rc));
    let from_redis_a = dump(&mut rc);
    for con in [&mut rc, &mut fc] {
        function(con, &[b"LOAD", LIB_B.as_bytes()]).unwrap();
    }
    let (from_redis, from_ferrokv) = (dump(&mut rc), dump(&mut fc));
    // Each side restores the other's payload in place of its own.
    function(&mut fc, &[b"RESTORE", &from_redis, b"FLUSH"]).unwrap();
    function(&mut rc, &[b"RESTORE", &from_ferrokv, b"FLUSH"]).unwrap();
    for lib in ["liba", "libb"] {
        assert_eq!(listing(&mut fc, lib), listing(&mut rc, lib), "{lib}");
    }
    let called: String = redis::cmd("FCALL")
        .arg("fa")
        .arg(0)
        .arg("x")
        .query(&mut fc)
        .unwrap();
    assert_eq!(called, "a:x");
    for con in [&mut rc, &mut fc] {
        function(con, &[b"FLUSH"]).unwrap();
    }
    assert_eq!(dump(&mut fc), dump(&mut rc));
    // Policies and errors, each tried on both sides.
    let mut bad_crc = from_redis.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    let key_dump: Vec<u8> = {
        let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut rc).unwrap();
        redis::cmd("DUMP").arg("k").query(&mut rc).unwrap()
    };
    let steps: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", &from_redis_a],
        vec![b"RESTORE", &from_redis_a],
        vec![b"RESTORE", &from_redis_a, b"APPEND"],
        vec![b"RESTORE", &from_redis, b"append"],
        vec![b"RESTORE", &from_redis, b"REPLACE"],
        vec![b"RESTORE", &from_redis_a, b"replace"],
        vec![b"RESTORE", &from_redis_a, b"FLUSH"],
        vec![b"RESTORE", &from_redis_a, b"bogus"],
        vec![b"RESTORE", &from_redis_a, b"APPEND", b"x"],
        vec![b"RESTORE", &bad_crc],
        vec![b"RESTORE", b"short"],
        vec![b"RESTORE", &key_dump],
        vec![b"RESTORE"],
        vec![b"DUMP", b"x"],
    ];
    for step in &steps {
        let (a, b) = (function(&mut fc, step), function(&mut rc, step));
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{:?}", step.len());
        assert_eq!(listing(&mut fc, "liba"), listing(&mut rc, "liba"));
        assert_eq!(listing(&mut fc, "libb"), listing(&mut rc, "libb"));
    }
}
