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
use std::time::{Duration, Instant};

use common::{info_field, wait_for_loops, ServerProcess};
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
    redis_with(dir, &[])
}

fn redis_with(dir: &Dir, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--dir", dir.path(), "--appendonly", "yes"];
    args.extend_from_slice(extra);
    ServerProcess::redis(&args)
}

fn manifest_path(dir: &Dir) -> PathBuf {
    dir.0.join("appendonlydir/appendonly.aof.manifest")
}

/// The files the manifest lists.
fn manifest_files(dir: &Dir) -> Vec<String> {
    std::fs::read_to_string(manifest_path(dir))
        .expect("manifest")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// redis-check-aof accepts the directory's manifest and every file it
/// lists (when the tool is installed).
fn check_aof(dir: &Dir) {
    if !common::have_tool("redis-check-aof") {
        return;
    }
    let out = Command::new("redis-check-aof")
        .arg(manifest_path(dir))
        .output()
        .expect("run redis-check-aof");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("All AOF files and manifest are valid"),
        "{text}"
    );
}

/// Waits until no BGREWRITEAOF runs or waits to.
fn wait_rewrite(con: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while info_field(con, "aof_rewrite_in_progress") != "0"
        || info_field(con, "aof_rewrite_scheduled") != "0"
    {
        assert!(Instant::now() < deadline, "BGREWRITEAOF did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The commands of an AOF file in RESP (an incr file, or a base written
/// without the RDB preamble).
fn commands_of(path: &PathBuf) -> Vec<Vec<String>> {
    let data = std::fs::read(path).expect("AOF file");
    let mut out = Vec::new();
    let mut lines = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    while let Some(head) = lines.next() {
        if head.is_empty() {
            continue;
        }
        let argc: usize = std::str::from_utf8(&head[1..])
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not RESP: {:?}", String::from_utf8_lossy(head)));
        let argv = (0..argc)
            .map(|_| {
                lines.next().expect("length line");
                String::from_utf8_lossy(lines.next().expect("argument")).into_owned()
            })
            .collect();
        out.push(argv);
    }
    out
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

/// (b) redis-server's AOF directory loads into ferrokv identically,
/// whether its base is an RDB preamble or commands.
#[test]
fn redis_aof_loads_into_ferrokv() {
    for preamble in ["yes", "no"] {
        redis_aof_loads_into_ferrokv_with(preamble);
    }
}

fn redis_aof_loads_into_ferrokv_with(preamble: &str) {
    let dir = Dir::new("from-redis");
    let before = {
        let r = redis_with(&dir, &["--aof-use-rdb-preamble", preamble]);
        let mut con = r.connection();
        run_workload(&mut con);
        // Redis rewrites its base: both parts are read.
        cmd(&mut con, "BGREWRITEAOF");
        wait_rewrite(&mut con);
        cmd(&mut con, "SET after-rewrite 1");
        cmd(&mut con, "SETEX after-rewrite2 1000 x");
        contents(&mut con)
    };
    let base = manifest_files(&dir)
        .into_iter()
        .find(|f| f.contains(".base."))
        .expect("a base file");
    let kind = if preamble == "yes" { ".rdb" } else { ".aof" };
    assert!(base.ends_with(kind), "{base}");
    let s = ferrokv_in(&dir, &[]);
    assert_eq!(contents(&mut s.connection()), before);
}

/// With `aof-use-rdb-preamble no` the rewritten base holds commands, as
/// Redis's: SET, RPUSH/SADD/ZADD/HMSET in batches of 64 items, PEXPIREAT,
/// SELECT per database. ferrokv and redis-server load it back, and
/// redis-check-aof accepts the directory in both base formats.
#[test]
fn rewrite_without_rdb_preamble() {
    for preamble in ["yes", "no"] {
        let dir = Dir::new("preamble");
        let before = {
            let s = ferrokv_in(&dir, &["--aof-use-rdb-preamble", preamble]);
            let mut con = s.connection();
            run_workload(&mut con);
            let many: Vec<String> = (0..150).map(|i| i.to_string()).collect();
            cmd(&mut con, &format!("RPUSH biglist {}", many.join(" ")));
            cmd(&mut con, "BGREWRITEAOF");
            wait_rewrite(&mut con);
            // And commands in the new incr file after the base.
            cmd(&mut con, "SET after-rewrite 1");
            check_aof(&dir);
            contents(&mut con)
        };
        let files = manifest_files(&dir);
        assert_eq!(files.len(), 2, "{files:?}");
        if preamble == "no" {
            assert_eq!(files[0], "appendonly.aof.2.base.aof");
            let base = commands_of(&dir.0.join("appendonlydir").join(&files[0]));
            assert_eq!(base[0], ["SELECT", "0"]);
            let pushes: Vec<usize> = base
                .iter()
                .filter(|c| c[0] == "RPUSH" && c[1] == "biglist")
                .map(|c| c.len() - 2)
                .collect();
            assert_eq!(pushes, [64, 64, 22]);
            for name in ["SET", "SADD", "ZADD", "HMSET", "PEXPIREAT"] {
                assert!(base.iter().any(|c| c[0] == name), "no {name}: {base:?}");
            }
            assert!(base.contains(&vec!["SELECT".to_string(), "2".to_string()]));
        } else {
            assert_eq!(files[0], "appendonly.aof.2.base.rdb");
        }
        let s = ferrokv_in(&dir, &[]);
        assert_eq!(contents(&mut s.connection()), before);
        drop(s);
        let r = redis_in(&dir);
        assert_eq!(contents(&mut r.connection()), before);
    }
}

/// A fresh AOF directory (the base written at start-up) and one after
/// writes pass redis-check-aof.
#[test]
fn redis_check_aof_accepts_ferrokv_directories() {
    let dir = Dir::new("check-aof");
    let s = ferrokv_in(&dir, &[]);
    check_aof(&dir);
    run_workload(&mut s.connection());
    check_aof(&dir);
}

/// (c) SIGKILL while BGREWRITEAOF writes the new base (made slow with
/// `rdb-key-save-delay`, which Redis applies to the rewrite too): every
/// acknowledged write is back after a restart, the manifest lists only
/// files that exist, and a later rewrite completes normally.
#[test]
fn sigkill_during_rewrite_loses_nothing() {
    for preamble in ["yes", "no"] {
        let dir = Dir::new("rewrite-kill");
        let args = [
            "--appendfsync",
            "always",
            "--aof-use-rdb-preamble",
            preamble,
        ];
        let mut s = ferrokv_in(&dir, &args);
        let mut con = s.connection();
        run_workload(&mut con);
        for i in 0..500 {
            cmd(&mut con, &format!("SET fill:{i} {i}"));
        }
        // About 540 keys at 5 ms each: the base takes seconds.
        cmd(&mut con, "CONFIG SET rdb-key-save-delay 5000");
        cmd(&mut con, "BGREWRITEAOF");
        for i in 0..100 {
            cmd(&mut con, &format!("SET during:{i} {i}"));
            cmd(&mut con, "INCR n");
            cmd(&mut con, &format!("DEL fill:{i}"));
        }
        let before = contents(&mut con);
        assert_eq!(info_field(&mut con, "aof_rewrite_in_progress"), "1");
        unsafe_kill(s.pid());
        s.wait_exit(Duration::from_secs(10));
        drop(s);
        for f in manifest_files(&dir) {
            assert!(
                dir.0.join("appendonlydir").join(&f).exists(),
                "{f} is listed but missing"
            );
        }
        check_aof(&dir);
        let s = ferrokv_in(&dir, &args);
        let mut con = s.connection();
        assert_eq!(contents(&mut con), before);
        cmd(&mut con, "BGREWRITEAOF");
        wait_rewrite(&mut con);
        assert_eq!(manifest_files(&dir).len(), 2);
        drop(con);
        drop(s);
        let s = ferrokv_in(&dir, &[]);
        assert_eq!(contents(&mut s.connection()), before);
    }
}

/// (e) Keys found expired are propagated as DEL, as Redis does: a lookup
/// alone logs the DEL, a write to an expired key logs DEL and the write
/// in MULTI ... EXEC, and the active expiry cycle logs a DEL. The tail of
/// the incr file matches redis-server's for the same commands.
#[test]
fn expired_keys_are_propagated_as_del() {
    let script = [
        "DEBUG SET-ACTIVE-EXPIRE 0",
        "SET a 1 PX 50",
        "SET b 1 PX 50",
        "HSET h f v",
        "PEXPIRE h 50",
        "SELECT 3",
        "SET x 3 PX 50",
        "SELECT 0",
        "SET x 0",
        "SET marker 1",
    ];
    // MOVE finds x expired in database 3: its DEL goes there.
    let after = [
        "GET a",
        "SET b 2",
        "HSET h f v2",
        "MOVE x 3",
        "SET d 1 PX 50",
        "DEBUG SET-ACTIVE-EXPIRE 1",
    ];
    let tail = |s: &ServerProcess, dir: &Dir| -> Vec<Vec<String>> {
        let mut con = s.connection();
        for line in script {
            cmd(&mut con, line);
        }
        std::thread::sleep(Duration::from_millis(200));
        for line in after {
            cmd(&mut con, line);
        }
        // The active cycle reclaims d; its DEL reaches the file within
        // the persistence thread's next pass.
        let deadline = Instant::now() + Duration::from_secs(10);
        let all = loop {
            let size: i64 = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
            let all = commands_of(&incr_file(dir));
            if size == 3 && all.last().is_some_and(|c| c[..] == ["DEL", "d"]) {
                break all;
            }
            assert!(Instant::now() < deadline, "d was never reclaimed");
            std::thread::sleep(Duration::from_millis(20));
        };
        let from = all
            .iter()
            .position(|c| c[..2] == ["SET", "marker"])
            .expect("marker");
        all[from + 1..]
            .iter()
            .filter(|c| !c[0].eq_ignore_ascii_case("debug"))
            .map(|c| {
                // Absolute times differ between the two runs.
                let mut c = c.clone();
                if c.len() == 5 && c[3] == "PXAT" {
                    c[4] = "<at>".into();
                }
                c
            })
            .collect()
    };
    let fdir = Dir::new("expire-del");
    let ours = tail(&ferrokv_in(&fdir, &[]), &fdir);
    let rdir = Dir::new("expire-del-redis");
    let theirs = tail(
        &redis_with(&rdir, &["--enable-debug-command", "yes"]),
        &rdir,
    );
    assert_eq!(ours, theirs);
    let expect_has = |cmdline: &[&str]| {
        assert!(
            ours.iter().any(|c| c == cmdline),
            "{cmdline:?} missing in {ours:?}"
        )
    };
    expect_has(&["DEL", "a"]);
    expect_has(&["DEL", "b"]);
    expect_has(&["DEL", "h"]);
    expect_has(&["DEL", "d"]);
}

/// (c) With `appendfsync always` every acknowledged INCR survives a
/// SIGKILL at a random moment, and nothing unsent appears.
#[test]
fn acknowledged_writes_survive_sigkill() {
    crash_rounds("always", 20, 50..300, Duration::ZERO);
}

/// (c) With `appendfsync everysec` a SIGKILL loses at most the last
/// second or so of acknowledged writes (Redis's promise; 2 s allow for a
/// loaded machine), and nothing unsent appears.
#[test]
fn everysec_loses_at_most_the_last_seconds() {
    crash_rounds("everysec", 3, 2500..3500, Duration::from_secs(2));
}

/// With `appendfsync always`, writes a client sends under CLIENT REPLY
/// OFF have no reply to hold back, yet they reach the disk without waiting
/// for one, and surely before that client's next reply: a SIGKILL as soon
/// as it arrives loses none. The writes come in the same read as the
/// reply's command, or in an earlier one, so in a pass of their own.
#[test]
fn writes_without_replies_are_on_disk_before_the_next_reply() {
    use std::io::{Read, Write};
    let dir = Dir::new("reply-off");
    let mut written: Vec<String> = Vec::new();
    for round in 0..10 {
        let mut server = ferrokv_in(&dir, &["--appendfsync", "always"]);
        let mut con = server.connection();
        for key in &written {
            let got: Option<String> = redis::cmd("GET").arg(key).query(&mut con).unwrap();
            assert_eq!(got.as_deref(), Some("v"), "{key} was lost");
        }
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut batch = b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n".to_vec();
        for i in 0..20 {
            let key = format!("r{round}:{i}");
            batch.extend_from_slice(
                format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len()).as_bytes(),
            );
            written.push(key);
        }
        let on = b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n";
        if round % 2 == 0 {
            batch.extend_from_slice(on);
            raw.write_all(&batch).unwrap();
        } else {
            raw.write_all(&batch).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let file = std::fs::read(incr_file(&dir)).unwrap();
            let last = written.last().unwrap().as_bytes();
            assert!(
                file.windows(last.len()).any(|w| w == last),
                "round {round}: the writes were not in the file yet"
            );
            raw.write_all(on).unwrap();
        }
        let mut ok = [0u8; 5];
        raw.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n");
        unsafe_kill(server.pid());
        server.wait_exit(Duration::from_secs(10));
    }
}

/// Rounds of: start ferrokv with `appendfsync <policy>` on the same
/// directory, check what survived the previous round, let concurrent
/// writers INCR their own counters for a random time in `run_ms`
/// (milliseconds), SIGKILL the server. Every INCR acknowledged more than
/// `margin` before the kill must have survived; no counter may exceed
/// what its writer sent.
fn crash_rounds(policy: &str, rounds: usize, run_ms: std::ops::Range<u64>, margin: Duration) {
    let dir = Dir::new("crash");
    const WRITERS: usize = 4;
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Per writer: acknowledged values with when they were acknowledged,
    // and the last value sent.
    let mut acked: Vec<Vec<(i64, Instant)>> = vec![Vec::new(); WRITERS];
    let mut sent = [0i64; WRITERS];
    let mut killed_at: Option<Instant> = None;
    let mut start = [0i64; WRITERS];
    for round in 0..=rounds {
        let s = ferrokv_in(&dir, &["--appendfsync", policy]);
        {
            let mut con = s.connection();
            for w in 0..WRITERS {
                let v: Option<i64> = redis::cmd("GET")
                    .arg(format!("counter{w}"))
                    .query(&mut con)
                    .expect("GET");
                let v = v.unwrap_or(0);
                // Without a margin every acknowledgement counts, even one
                // read after the kill.
                let promised = killed_at.and_then(|k| {
                    acked[w]
                        .iter()
                        .rev()
                        .find(|(_, at)| margin.is_zero() || *at + margin <= k)
                        .map(|(v, _)| *v)
                });
                if let Some(p) = promised {
                    assert!(
                        v >= p,
                        "round {round}: writer {w} was acknowledged {p} more than {margin:?} \
                         before the kill, but {v} survived"
                    );
                }
                assert!(
                    v <= sent[w],
                    "round {round}: writer {w} sent {} but {v} is stored",
                    sent[w]
                );
                start[w] = v;
                sent[w] = v;
            }
        }
        if round == rounds {
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let mut con = s.connection();
                let stop = stop.clone();
                let first = start[w];
                std::thread::spawn(move || {
                    let mut history = Vec::new();
                    let mut last_sent = first;
                    while !stop.load(Ordering::Relaxed) {
                        last_sent += 1;
                        match redis::cmd("INCR")
                            .arg(format!("counter{w}"))
                            .query::<i64>(&mut con)
                        {
                            Ok(v) => {
                                assert_eq!(v, last_sent);
                                history.push((v, Instant::now()));
                            }
                            Err(_) => break,
                        }
                    }
                    (history, last_sent)
                })
            })
            .collect();
        let ms = run_ms.start + rand() % (run_ms.end - run_ms.start).max(1);
        std::thread::sleep(Duration::from_millis(ms));
        unsafe_kill(s.pid());
        killed_at = Some(Instant::now());
        stop.store(true, Ordering::Relaxed);
        for (w, h) in handles.into_iter().enumerate() {
            let (history, snt) = h.join().expect("writer thread");
            acked[w] = history;
            sent[w] = snt;
        }
        drop(s);
    }
    assert!(start.iter().sum::<i64>() > 0);
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
    assert_eq!(libraries(&mut r.connection()), after);
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

/// With `appendfsync always`, connections that mostly write gather on
/// loop 0, so that one fsync per pass covers all of them, and go back to
/// the loop they were dealt once the policy changes.
#[test]
fn writers_gather_on_one_loop_under_appendfsync_always() {
    const CLIENTS: usize = 4;
    let dir = Dir::new("aof-gather");
    let server = ferrokv_in(&dir, &["--server-threads", "2", "--appendfsync", "always"]);
    let mut admin = server.connection();
    let mut cons: Vec<_> = (0..CLIENTS).map(|_| server.connection()).collect();
    let start = wait_for_loops(&mut admin, |c| c.iter().sum::<usize>() == CLIENTS + 1);
    assert!(start[1] >= CLIENTS / 2, "dealt round-robin: {start:?}");
    let write_a_window = |cons: &mut Vec<redis::Connection>, round: usize| {
        for (i, con) in cons.iter_mut().enumerate() {
            for n in 0..70 {
                let _: () = redis::cmd("SET")
                    .arg(format!("k:{i}:{n}"))
                    .arg(round)
                    .query(con)
                    .unwrap();
            }
        }
    };
    write_a_window(&mut cons, 1);
    let gathered = wait_for_loops(&mut admin, |c| c[0] >= CLIENTS);
    assert!(
        gathered[0] >= CLIENTS,
        "writers did not gather: {gathered:?}"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("everysec")
        .query(&mut admin)
        .unwrap();
    write_a_window(&mut cons, 2);
    let back = wait_for_loops(&mut admin, |c| c == start.as_slice());
    assert_eq!(back, start, "writers did not go back to their loops");
    let v: String = redis::cmd("GET").arg("k:3:69").query(&mut admin).unwrap();
    assert_eq!(v, "2");
}
