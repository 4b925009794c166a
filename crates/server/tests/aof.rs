//! The append-only file against the real thing: everything written comes
//! back after a restart (kill -9 included), ferrokv's AOF directory loads
//! into redis-server 7.0 and Redis's into ferrokv, acknowledged writes
//! survive a SIGKILL with `appendfsync always`, and truncated or damaged
//! files are handled as `aof-load-truncated` says. Function libraries
//! survive restarts and rewrites.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::ServerProcess;
use redis::Value;

use common::tempdir::Dir;

/// The file under test in a server's scratch directory.
fn incr_file(dir: &Dir) -> PathBuf {
    dir.0.join("appendonlydir/appendonly.aof.1.incr.aof")
}

fn ferrokv_in(dir: &Dir, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--dir", dir.path(), "--appendonly", "yes"];
    args.extend_from_slice(extra);
    ServerProcess::ferrokv(&args)
}

fn redis_in(dir: &Dir) -> ServerProcess {
    ServerProcess::redis(&["--dir", dir.path(), "--appendonly", "yes"])
}

fn cmd(con: &mut redis::Connection, line: &str) -> Value {
    let words: Vec<&str> = line.split(' ').collect();
    let mut c = redis::cmd(words[0]);
    for w in &words[1..] {
        c.arg(*w);
    }
    c.query(con).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Every key of databases 0-3 with its type, value and absolute expiry,
/// in a canonical order.
fn contents(con: &mut redis::Connection) -> Vec<String> {
    let mut out = Vec::new();
    for db in 0..4 {
        cmd(con, &format!("SELECT {db}"));
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).expect("KEYS");
        keys.sort();
        for k in keys {
            let t: String = redis::cmd("TYPE").arg(&k).query(con).expect("TYPE");
            let v: Value = match t.as_str() {
                "string" => redis::cmd("GET").arg(&k).query(con),
                "list" => redis::cmd("LRANGE").arg(&k).arg(0).arg(-1).query(con),
                "set" => redis::cmd("SMEMBERS")
                    .arg(&k)
                    .query(con)
                    .map(|v: Vec<String>| {
                        let mut v = v;
                        v.sort();
                        Value::SimpleString(v.join(","))
                    }),
                "hash" => redis::cmd("HGETALL").arg(&k).query(con).map(|v: Value| {
                    let mut pairs: Vec<String> = match v {
                        Value::Array(items) => {
                            items.chunks(2).map(|p| format!("{:?}", p)).collect()
                        }
                        other => vec![format!("{other:?}")],
                    };
                    pairs.sort();
                    Value::SimpleString(pairs.join(","))
                }),
                _ => redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(con),
            }
            .unwrap_or_else(|e| panic!("{k} {t}: {e}"));
            let at: i64 = redis::cmd("PEXPIRETIME")
                .arg(&k)
                .query(con)
                .expect("PEXPIRETIME");
            out.push(format!("{db} {k} {t} {v:?} {at}"));
        }
    }
    cmd(con, "SELECT 0");
    out
}

/// Writes of every kind, including the ones propagated in another form.
const WORKLOAD: &[&str] = &[
    "SET s1 hello",
    "SET n 10",
    "INCR n",
    "INCRBYFLOAT f 1.5",
    "INCRBYFLOAT f 0.25",
    "APPEND s1 world",
    "SETEX ttl1 1000 a",
    "PSETEX ttl2 900000 b",
    "SET ttl3 c EX 800",
    "SET ttl4 d PX 700000 GET",
    "SET t5 e",
    "EXPIRE t5 600",
    "SET t6 e",
    "PEXPIRE t6 500000",
    "SET t7 f",
    "GETEX t7 EX 400",
    "SET t8 g EX 100",
    "PERSIST t8",
    "RPUSH l a b c d e",
    "LPOP l",
    "LPUSH l z",
    "SADD s 1 2 3 4 5 6 7 8",
    "SPOP s",
    "SPOP s 2",
    "SADD names alice bob carol",
    "SREM names bob",
    "HSET h f1 v1 f2 v2 f3 3",
    "HINCRBYFLOAT h f3 0.5",
    "HDEL h f1",
    "ZADD z 1 a 2 b 3 c",
    "ZINCRBY z 5 a",
    "ZPOPMIN z",
    "MULTI",
    "SET m1 1",
    "INCR m1",
    "RPUSH ml x y",
    "EXEC",
    "EVAL redis.call('set','lua1','v');redis.call('sadd','luaset','a','b');return(1) 0",
    "SELECT 2",
    "SET other db2",
    "RPUSH otherlist 1 2 3",
    "SELECT 0",
    "SET gone 1",
    "DEL gone",
    "SET renamed 1",
    "RENAME renamed renamed2",
    "MOVE renamed2 3",
];

fn run_workload(con: &mut redis::Connection) {
    for line in WORKLOAD {
        cmd(con, line);
    }
}

/// (a) Writes come back after a SIGKILL and restart.
#[test]
fn restart_restores_everything() {
    let dir = Dir::new("restart");
    let before = {
        let s = ferrokv_in(&dir, &[]);
        let mut con = s.connection();
        run_workload(&mut con);
        contents(&mut con)
        // Dropping kills the process with SIGKILL.
    };
    assert!(before.len() > 15, "{before:?}");
    let s = ferrokv_in(&dir, &[]);
    let mut con = s.connection();
    assert_eq!(contents(&mut con), before);
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut con)
        .expect("INFO");
    assert!(info.contains("aof_enabled:1"), "{info}");
    assert!(info.contains("aof_last_write_status:ok"), "{info}");
    // A second generation of writes on top of the loaded data.
    cmd(&mut con, "INCR n");
    let again = contents(&mut con);
    drop(s);
    let s = ferrokv_in(&dir, &[]);
    assert_eq!(contents(&mut s.connection()), again);
}

/// (b) ferrokv's AOF directory loads into redis-server 7.0 identically.
#[test]
fn ferrokv_aof_loads_into_redis() {
    let dir = Dir::new("to-redis");
    let before = {
        let s = ferrokv_in(&dir, &[]);
        let mut con = s.connection();
        // Data in the base as well as in the incr file.
        cmd(&mut con, "SET before-restart 1");
        drop(con);
        drop(s);
        let s = ferrokv_in(&dir, &[]);
        let mut con = s.connection();
        run_workload(&mut con);
        contents(&mut con)
    };
    let r = redis_in(&dir);
    assert_eq!(contents(&mut r.connection()), before);
}

/// (b) redis-server's AOF directory loads into ferrokv identically.
#[test]
fn redis_aof_loads_into_ferrokv() {
    let dir = Dir::new("from-redis");
    let before = {
        let r = redis_in(&dir);
        let mut con = r.connection();
        run_workload(&mut con);
        // Redis rewrites its base: both parts are read.
        cmd(&mut con, "BGREWRITEAOF");
        std::thread::sleep(Duration::from_millis(500));
        cmd(&mut con, "SET after-rewrite 1");
        cmd(&mut con, "SETEX after-rewrite2 1000 x");
        contents(&mut con)
    };
    let s = ferrokv_in(&dir, &[]);
    assert_eq!(contents(&mut s.connection()), before);
}

/// (c) With `appendfsync always` every acknowledged INCR survives a
/// SIGKILL at a random moment, and nothing unsent appears.
#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = Dir::new("crash");
    const WRITERS: usize = 4;
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut acked = [0i64; WRITERS];
    let mut sent = [0i64; WRITERS];
    for round in 0..20 {
        let s = ferrokv_in(&dir, &["--appendfsync", "always"]);
        {
            let mut con = s.connection();
            for w in 0..WRITERS {
                let v: Option<i64> = redis::cmd("GET")
                    .arg(format!("counter{w}"))
                    .query(&mut con)
                    .expect("GET");
                let v = v.unwrap_or(0);
                assert!(
                    v >= acked[w],
                    "round {round}: writer {w} acknowledged {} but {v} survived",
                    acked[w]
                );
                assert!(
                    v <= sent[w],
                    "round {round}: writer {w} sent {} but {v} is stored",
                    sent[w]
                );
                acked[w] = v;
                sent[w] = v;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let mut con = s.connection();
                let stop = stop.clone();
                let start = acked[w];
                std::thread::spawn(move || {
                    let (mut last_acked, mut last_sent) = (start, start);
                    while !stop.load(Ordering::Relaxed) {
                        last_sent += 1;
                        match redis::cmd("INCR")
                            .arg(format!("counter{w}"))
                            .query::<i64>(&mut con)
                        {
                            Ok(v) => {
                                assert_eq!(v, last_sent);
                                last_acked = v;
                            }
                            Err(_) => break,
                        }
                    }
                    (last_acked, last_sent)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rand() % 250));
        unsafe_kill(s.pid());
        stop.store(true, Ordering::Relaxed);
        for (w, h) in handles.into_iter().enumerate() {
            let (a, snt) = h.join().expect("writer thread");
            acked[w] = a;
            sent[w] = snt;
        }
        drop(s);
    }
    assert!(acked.iter().sum::<i64>() > 0);
}

fn unsafe_kill(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// Starts ferrokv and expects it to refuse to start: returns the exit
/// code and what it logged.
fn failed_start(dir: &Dir, extra: &[&str]) -> (Option<i32>, String) {
    let port = common::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokv"))
        .args(["--port", &port.to_string(), "--dir", dir.path()])
        .args(["--save", "", "--appendonly", "yes"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run ferrokv");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

fn prepare(dir: &Dir) -> (Vec<String>, u64) {
    let s = ferrokv_in(dir, &[]);
    let mut con = s.connection();
    run_workload(&mut con);
    let before = contents(&mut con);
    drop(s);
    let len = std::fs::metadata(incr_file(dir)).expect("incr file").len();
    (before, len)
}

fn append(path: &PathBuf, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open incr file");
    f.write_all(bytes).expect("append");
}

/// (d) A truncated last command: loaded up to it and cut off with
/// `aof-load-truncated yes`; start-up refused with `no`.
#[test]
fn truncated_tail() {
    let dir = Dir::new("truncated");
    let (before, len) = prepare(&dir);
    append(&incr_file(&dir), b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$5\r\nabc");
    let (code, text) = failed_start(&dir, &["--aof-load-truncated", "no"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("Unexpected end of file"), "{text}");
    let s = ferrokv_in(&dir, &["--aof-load-truncated", "yes"]);
    assert_eq!(contents(&mut s.connection()), before);
    assert_eq!(std::fs::metadata(incr_file(&dir)).expect("incr").len(), len);
    // A transaction cut short is dropped as a whole.
    drop(s);
    append(
        &incr_file(&dir),
        b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n1\r\n",
    );
    let s = ferrokv_in(&dir, &[]);
    assert_eq!(contents(&mut s.connection()), before);
    assert_eq!(std::fs::metadata(incr_file(&dir)).expect("incr").len(), len);
}

/// (d) Garbage before the end stops start-up with its offset, whatever
/// `aof-load-truncated` says.
#[test]
fn garbage_in_the_middle() {
    let dir = Dir::new("garbage");
    let (_, len) = prepare(&dir);
    append(
        &incr_file(&dir),
        b"this is not RESP\r\n*1\r\n$4\r\nPING\r\n",
    );
    let (code, text) = failed_start(&dir, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("offset {len}")), "{text}");
}

/// (e) BGREWRITEAOF while clients write: nothing is lost, in ferrokv after
/// a restart nor in redis-server loading the rewritten directory.
#[test]
fn rewrite_under_writes_keeps_everything() {
    let dir = Dir::new("rewrite");
    let before = {
        let s = ferrokv_in(&dir, &[]);
        let mut con = s.connection();
        run_workload(&mut con);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let mut con = s.connection();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        cmd(&mut con, &format!("RPUSH list{w} {n}"));
                        cmd(&mut con, &format!("HSET hash{w} f{} {n}", n % 50));
                        cmd(&mut con, &format!("SET str{w}:{} {n}", n % 100));
                    }
                })
            })
            .collect();
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(100));
            loop {
                let r = redis::cmd("BGREWRITEAOF").query::<String>(&mut con);
                match r {
                    Ok(_) => break,
                    Err(e) if e.to_string().contains("already in progress") => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => panic!("BGREWRITEAOF: {e}"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        loop {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query(&mut con)
                .expect("INFO");
            if info.contains("aof_rewrite_in_progress:0") {
                assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
                assert!(!info.contains("aof_rewrites:0"), "{info}");
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        contents(&mut con)
    };
    let manifest = std::fs::read_to_string(dir.0.join("appendonlydir/appendonly.aof.manifest"))
        .expect("manifest");
    assert_eq!(manifest.lines().count(), 2, "{manifest}");
    let s = ferrokv_in(&dir, &[]);
    assert_eq!(contents(&mut s.connection()), before);
    drop(s);
    let r = redis_in(&dir);
    assert_eq!(contents(&mut r.connection()), before);
}

const LIB_A: &str = "#!lua name=liba\nredis.register_function('fa', function() return 1 end)";
const LIB_B: &str = "#!lua name=libb\nredis.register_function('fb', function() return 2 end)";

fn function(con: &mut redis::Connection, args: &[&[u8]]) -> Value {
    let mut c = redis::cmd("FUNCTION");
    for a in args {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| panic!("FUNCTION: {e}"))
}

/// The libraries and their code, one by one (Redis lists them in hash
/// order).
fn libraries(con: &mut redis::Connection) -> Vec<Value> {
    ["liba", "libb"]
        .iter()
        .map(|lib| function(con, &[b"LIST", b"LIBRARYNAME", lib.as_bytes(), b"WITHCODE"]))
        .collect()
}

fn wait_rewrite(con: &mut redis::Connection) {
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(con)
            .expect("INFO");
        if info.contains("aof_rewrite_in_progress:0") && !info.contains("aof_rewrites:0") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// FUNCTION LOAD, DELETE, FLUSH and RESTORE are logged, so libraries come
/// back after a restart; a rewrite's base carries them; redis-server loads
/// the directory with the same libraries.
#[test]
fn functions_survive_restarts_and_rewrites() {
    let dir = Dir::new("functions");
    let before = {
        let s = ferrokv_in(&dir, &[]);
        let mut con = s.connection();
        function(&mut con, &[b"LOAD", LIB_A.as_bytes()]);
        function(&mut con, &[b"LOAD", LIB_B.as_bytes()]);
        let payload: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut con).unwrap();
        function(&mut con, &[b"FLUSH"]);
        function(&mut con, &[b"RESTORE", &payload]);
        function(&mut con, &[b"DELETE", b"libb"]);
        function(&mut con, &[b"LOAD", b"REPLACE", LIB_B.as_bytes()]);
        libraries(&mut con)
    };
    let s = ferrokv_in(&dir, &[]);
    let mut con = s.connection();
    assert_eq!(libraries(&mut con), before);
    cmd(&mut con, "BGREWRITEAOF");
    wait_rewrite(&mut con);
    function(&mut con, &[b"DELETE", b"liba"]);
    let after = libraries(&mut con);
    drop(con);
    drop(s);
    let s = ferrokv_in(&dir, &[]);
    assert_eq!(libraries(&mut s.connection()), after);
    drop(s);
    let r = redis_in(&dir);
    let mut con = r.connection();
    // redis-server listens before it has loaded the files (-LOADING).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while redis::cmd("PING").query::<String>(&mut con).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server is still loading"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(libraries(&mut con), after);
}

/// CONFIG SET appendonly yes at runtime writes a base of the data set
/// first; everything is back after a restart with the AOF on.
#[test]
fn config_set_appendonly_at_runtime() {
    let dir = Dir::new("runtime");
    let before = {
        let s = ServerProcess::ferrokv(&["--dir", dir.path()]);
        let mut con = s.connection();
        cmd(&mut con, "SET before-aof 1");
        cmd(&mut con, "RPUSH list-before a b");
        cmd(&mut con, "CONFIG SET appendonly yes");
        run_workload(&mut con);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query(&mut con)
                .expect("INFO");
            if info.contains("aof_rewrites:1") && info.contains("aof_rewrite_in_progress:0") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        cmd(&mut con, "SET after-base 1");
        contents(&mut con)
    };
    let s = ferrokv_in(&dir, &[]);
    assert_eq!(contents(&mut s.connection()), before);
}
