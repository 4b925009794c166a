//! RDB persistence against the real thing: ferrokv's dumps load into
//! redis-server 7.0 and pass redis-check-rdb, Redis's dumps and DUMP
//! payloads load into ferrokv, snapshots are point-in-time under
//! concurrent writes, damaged files stop start-up, and a failing save
//! turns writes away with MISCONF until saving works again. Function
//! libraries travel in the files too.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{info_field, ServerProcess};
use redis::Value;

use common::tempdir::Dir;

/// The file under test in a server's scratch directory.
fn dump_file(dir: &Dir) -> PathBuf {
    dir.0.join("dump.rdb")
}

fn ferrokv_in(dir: &Dir, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--dir", dir.path()];
    args.extend_from_slice(extra);
    ServerProcess::ferrokv(&args)
}

fn redis_in(dir: &Dir) -> ServerProcess {
    ServerProcess::redis(&["--dir", dir.path(), "--dbfilename", "dump.rdb"])
}

fn q<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&[u8]]) -> T {
    let mut c = redis::cmd(std::str::from_utf8(args[0]).expect("ascii command"));
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(args[0])))
}

fn err_of(con: &mut redis::Connection, args: &[&[u8]]) -> String {
    let mut c = redis::cmd(std::str::from_utf8(args[0]).expect("ascii command"));
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<Value>(con) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            let code = e.code().unwrap_or("").to_string();
            let detail = e.detail().unwrap_or("").to_string();
            format!("{code} {detail}").trim().to_string()
        }
    }
}

/// Strings in every RDB encoding: int8/16/32 and beyond, short, long
/// compressible (LZF) and incompressible, binary, empty; TTLs; two
/// databases.
fn fill(con: &mut redis::Connection) {
    let mut noise = Vec::new();
    let mut x = 0x9e37_79b9_u32;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    let values: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"i8".to_vec(), b"-7".to_vec()),
        (b"i16".to_vec(), b"30000".to_vec()),
        (b"i32".to_vec(), b"-2000000000".to_vec()),
        (b"i64".to_vec(), b"9223372036854775807".to_vec()),
        (b"lead0".to_vec(), b"007".to_vec()),
        (b"empty".to_vec(), b"".to_vec()),
        (b"short".to_vec(), b"hello world".to_vec()),
        (b"twenty1".to_vec(), b"abcdefghijabcdefghija".to_vec()),
        (b"long".to_vec(), b"ab".repeat(2000)),
        (b"noise".to_vec(), noise.clone()),
        (b"bin\x00\xff key".to_vec(), b"\x00\x01\x02\xfe".to_vec()),
        (vec![b'k'; 300], b"long key".to_vec()),
    ];
    for (k, v) in &values {
        let _: () = q(con, &[b"SET", k, v]);
    }
    let _: () = q(con, &[b"APPEND", b"appended", b"grown"]);
    let _: () = q(con, &[b"SET", b"ttl", b"v", b"PX", b"100000000"]);
    let _: () = q(con, &[b"SET", b"ttl-int", b"5", b"EX", b"500000"]);
    let _: () = q(con, &[b"SELECT", b"5"]);
    let _: () = q(con, &[b"SET", b"in-db-5", b"x", b"PX", b"90000000"]);
    let _: () = q(con, &[b"SET", b"in-db-5-long", &noise[..500]]);
    let _: () = q(con, &[b"SELECT", b"0"]);
    // Sorted sets: listpack (small) and skiplist (many members, or a long
    // member), integer-like and odd scores, a TTL.
    let _: () = q(
        con,
        &[
            b"ZADD", b"zsmall", b"1", b"a", b"-2.5", b"b", b"inf", b"c", b"7", b"12345",
        ],
    );
    let _: () = q(con, &[b"ZADD", b"zlong", b"1", &[b'm'; 100]]);
    let _: () = q(con, &[b"PEXPIRE", b"zlong", b"80000000"]);
    for i in 0..300 {
        let m = format!("member:{i}");
        let _: () = q(
            con,
            &[
                b"ZADD",
                b"zbig",
                format!("{}", i as f64 / 3.0).as_bytes(),
                m.as_bytes(),
            ],
        );
    }
    // Lists, sets and hashes in both of their encodings, with a TTL.
    let _: () = q(con, &[b"RPUSH", b"lsmall", b"a", b"12", b"-3", b""]);
    let _: () = q(con, &[b"RPUSH", b"lbig", &noise[..2000], b"x"]);
    let _: () = q(con, &[b"PEXPIRE", b"lbig", b"70000000"]);
    let _: () = q(
        con,
        &[b"SADD", b"sints", b"3", b"-70000", b"5000000000", b"1"],
    );
    let _: () = q(con, &[b"SADD", b"swords", b"a", b"b", &[b'c'; 100]]);
    let _: () = q(con, &[b"HSET", b"hsmall", b"f", b"v", b"n", b"12"]);
    let _: () = q(con, &[b"HSET", b"hbig", b"f", &[b'v'; 100]]);
    for i in 0..700 {
        let m = format!("{i}");
        let _: () = q(con, &[b"RPUSH", b"lmany", m.as_bytes()]);
        let _: () = q(con, &[b"SADD", b"smany", m.as_bytes()]);
        let _: () = q(con, &[b"HSET", b"hmany", m.as_bytes(), b"v"]);
    }
    // Quicklists of several nodes (mixed integers and strings of many
    // lengths, one element too big to share a node), one grown at the
    // head; intsets of each width, one that keeps its width after losing
    // its widest member; listpack sorted sets with integral, huge, signed
    // zero and infinite scores; listpack hashes with every entry encoding.
    let mut rpush: Vec<Vec<u8>> = vec![b"RPUSH".to_vec(), b"lnodes".to_vec()];
    let mut lpush: Vec<Vec<u8>> = vec![b"LPUSH".to_vec(), b"lhead".to_vec()];
    for i in 0..3000u32 {
        let item = match i % 4 {
            0 => format!("{}", i64::from(i) * 1_000_003 - 900_000_000).into_bytes(),
            1 => format!("{}", i % 200).into_bytes(),
            2 => noise[..(i as usize * 7) % 300].to_vec(),
            _ => format!("item-{i}").repeat(i as usize % 9).into_bytes(),
        };
        rpush.push(item.clone());
        lpush.push(item);
    }
    rpush.push(noise.repeat(4));
    let args: Vec<&[u8]> = rpush.iter().map(Vec::as_slice).collect();
    let _: i64 = q(con, &args);
    let args: Vec<&[u8]> = lpush.iter().map(Vec::as_slice).collect();
    let _: i64 = q(con, &args);
    let _: () = q(con, &[b"SADD", b"s16", b"-32768", b"32767", b"0"]);
    let _: () = q(con, &[b"SADD", b"s32", b"-32769", b"2147483647", b"5"]);
    let _: () = q(con, &[b"SADD", b"s64", b"-9223372036854775808", b"7"]);
    let _: () = q(con, &[b"SADD", b"swide", b"1", b"2", b"5000000000"]);
    let _: () = q(con, &[b"SREM", b"swide", b"5000000000"]);
    let _: () = q(
        con,
        &[
            b"ZADD",
            b"zscores",
            b"0",
            b"zero",
            b"-0",
            b"negzero",
            b"4503599627370496",
            b"p52",
            b"-4503599627370495",
            b"n52",
            b"1e20",
            b"big",
            b"-inf",
            b"ninf",
            b"0.1",
            b"tenth",
            b"-70000",
            b"i24",
            b"123456789012",
            b"i64",
        ],
    );
    let _: () = q(
        con,
        &[
            b"HSET",
            b"hkinds",
            b"7bit",
            b"127",
            b"13bit",
            b"-4096",
            b"16bit",
            b"-32768",
            b"24bit",
            b"8388607",
            b"32bit",
            b"-2147483648",
            b"64bit",
            b"-9223372036854775808",
            b"not-int",
            b"-0",
            &[b's'; 63],
            &[b't'; 64],
        ],
    );
    let _: () = q(con, &[b"HSET", b"hlongvalue", b"f", &[b'v'; 65]]);
    for i in 0..500 {
        let k = format!("many:{i}");
        let _: () = q(
            con,
            &[b"SET", k.as_bytes(), format!("{}", i * 1000).as_bytes()],
        );
    }
}

/// Every key of databases 0..8 with its value, encoding and expiry time.
type Snapshot = Vec<(i64, Vec<u8>, Vec<u8>, String, i64)>;

fn snapshot(con: &mut redis::Connection) -> Snapshot {
    let mut out = Vec::new();
    for db in 0..8i64 {
        let _: () = q(con, &[b"SELECT", db.to_string().as_bytes()]);
        let mut keys: Vec<Vec<u8>> = q(con, &[b"KEYS", b"*"]);
        keys.sort();
        for k in keys {
            let ty: String = q(con, &[b"TYPE", &k]);
            let v: Vec<u8> = match ty.as_str() {
                "zset" => {
                    let items: Vec<Vec<u8>> = q(con, &[b"ZRANGE", &k, b"0", b"-1", b"WITHSCORES"]);
                    items.join(&b"|"[..])
                }
                "list" => {
                    let items: Vec<Vec<u8>> = q(con, &[b"LRANGE", &k, b"0", b"-1"]);
                    items.join(&b"|"[..])
                }
                "set" => {
                    let mut items: Vec<Vec<u8>> = q(con, &[b"SMEMBERS", &k]);
                    items.sort();
                    items.join(&b"|"[..])
                }
                "hash" => {
                    let flat: Vec<Vec<u8>> = q(con, &[b"HGETALL", &k]);
                    let mut pairs: Vec<Vec<u8>> =
                        flat.chunks(2).map(|p| p.join(&b"="[..])).collect();
                    pairs.sort();
                    pairs.join(&b"|"[..])
                }
                _ => q(con, &[b"GET", &k]),
            };
            let enc: String = q(con, &[b"OBJECT", b"ENCODING", &k]);
            let at: i64 = q(con, &[b"PEXPIRETIME", &k]);
            out.push((db, k, v, enc, at));
        }
    }
    let _: () = q(con, &[b"SELECT", b"0"]);
    out
}

#[test]
fn ferrokv_dump_loads_into_redis_and_passes_redis_check_rdb() {
    let dir = Dir::new("f2r");
    let f = ferrokv_in(&dir, &[]);
    let mut fc = f.connection();
    fill(&mut fc);
    let before = snapshot(&mut fc);
    let _: () = q(&mut fc, &[b"SAVE"]);
    check_rdb(&dump_file(&dir));
    let r = redis_in(&dir);
    let mut rc = r.connection();
    assert_eq!(snapshot(&mut rc), before);
    // Uncompressed, without a checksum: still valid for Redis.
    let dir2 = Dir::new("f2r-plain");
    let f2 = ferrokv_in(&dir2, &["--rdbcompression", "no", "--rdbchecksum", "no"]);
    let mut fc2 = f2.connection();
    fill(&mut fc2);
    let _: () = q(&mut fc2, &[b"SAVE"]);
    let r2 = redis_in(&dir2);
    assert_eq!(snapshot(&mut r2.connection()), snapshot(&mut fc2));
}

/// redis-check-rdb accepts `path` (when the tool is installed).
fn check_rdb(path: &Path) {
    if !common::have_tool("redis-check-rdb") {
        return;
    }
    let out = Command::new("redis-check-rdb")
        .arg(path)
        .output()
        .expect("run redis-check-rdb");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("RDB looks OK"),
        "{text}"
    );
}

#[test]
fn redis_dump_loads_into_ferrokv() {
    let dir = Dir::new("r2f");
    let r = redis_in(&dir);
    let mut rc = r.connection();
    fill(&mut rc);
    let _: () = q(&mut rc, &[b"SAVE"]);
    let expected = snapshot(&mut rc);
    let f = ferrokv_in(&dir, &[]);
    assert_eq!(snapshot(&mut f.connection()), expected);
}

#[test]
fn dump_and_restore_cross_servers() {
    let r = ServerProcess::redis(&[]);
    let f = ServerProcess::ferrokv(&[]);
    let (mut rc, mut fc) = (r.connection(), f.connection());
    fill(&mut rc);
    fill(&mut fc);
    let keys: Vec<Vec<u8>> = q(&mut rc, &[b"KEYS", b"*"]);
    // Byte for byte without LZF: Redis's compressor starts from a hash
    // table it never clears, so it may (rarely, and validly) find a match
    // that a clean one would not, and compressed bytes can differ.
    for con in [&mut rc, &mut fc] {
        let _: () = q(con, &[b"CONFIG", b"SET", b"rdbcompression", b"no"]);
    }
    for k in &keys {
        let from_redis: Vec<u8> = q(&mut rc, &[b"DUMP", k]);
        let from_ferrokv: Vec<u8> = q(&mut fc, &[b"DUMP", k]);
        // ferrokv serializes as Redis 7.0 does, compact encodings and node
        // splits included. Only hashtable-encoded collections may come out
        // in another order (Redis's dict order is its own), and a list
        // grown at the head: Redis filled its nodes from the tail, the
        // writer splits every list as if it had been pushed at the tail.
        let enc: String = q(&mut rc, &[b"OBJECT", b"ENCODING", k]);
        if enc != "hashtable" && k != b"lhead" {
            assert!(
                from_redis == from_ferrokv,
                "DUMP {} differs",
                String::from_utf8_lossy(k)
            );
        }
    }
    for con in [&mut rc, &mut fc] {
        let _: () = q(con, &[b"CONFIG", b"SET", b"rdbcompression", b"yes"]);
    }
    for k in &keys {
        let from_redis: Vec<u8> = q(&mut rc, &[b"DUMP", k]);
        let from_ferrokv: Vec<u8> = q(&mut fc, &[b"DUMP", k]);
        let target = [k.as_slice(), b"-copy"].concat();
        let _: () = q(&mut fc, &[b"RESTORE", &target, b"0", &from_redis]);
        let _: () = q(&mut rc, &[b"RESTORE", &target, b"0", &from_ferrokv]);
        let ty: String = q(&mut rc, &[b"TYPE", k]);
        let get_all = |con: &mut redis::Connection, key: &[u8]| -> Vec<Vec<u8>> {
            match ty.as_str() {
                "zset" => q(con, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]),
                "list" => q(con, &[b"LRANGE", key, b"0", b"-1"]),
                "set" => {
                    let mut m: Vec<Vec<u8>> = q(con, &[b"SMEMBERS", key]);
                    m.sort();
                    m
                }
                "hash" => {
                    let flat: Vec<Vec<u8>> = q(con, &[b"HGETALL", key]);
                    let mut pairs: Vec<Vec<u8>> = flat.chunks(2).map(|p| p.concat()).collect();
                    pairs.sort();
                    pairs
                }
                _ => vec![q(con, &[b"GET", key])],
            }
        };
        let a = get_all(&mut fc, &target);
        let b = get_all(&mut rc, &target);
        let orig = get_all(&mut rc, k);
        assert_eq!(a, orig);
        assert_eq!(b, orig);
        let ea: String = q(&mut fc, &[b"OBJECT", b"ENCODING", &target]);
        let eb: String = q(&mut rc, &[b"OBJECT", b"ENCODING", &target]);
        assert_eq!(ea, eb, "{}", String::from_utf8_lossy(k));
    }
    let good: Vec<u8> = q(&mut rc, &[b"DUMP", b"short"]);
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 0x55;
    let mut newer = good.clone();
    let n = newer.len();
    newer[n - 10] = 11;
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"short", b"0", &good],
        vec![b"RESTORE", b"x", b"-1", &good],
        vec![b"RESTORE", b"x", b"abc", &good],
        vec![b"RESTORE", b"x", b"0", &bad_crc],
        vec![b"RESTORE", b"x", b"0", &newer],
        vec![b"RESTORE", b"x", b"0", b"short"],
        vec![b"RESTORE", b"x", b"0", &good, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"x", b"0", &good, b"FREQ", b"256"],
        vec![
            b"RESTORE",
            b"x",
            b"0",
            &good,
            b"FREQ",
            b"1",
            b"IDLETIME",
            b"2",
        ],
        vec![b"RESTORE", b"x", b"0", &good, b"bogus"],
    ];
    for c in &cases {
        assert_eq!(err_of(&mut fc, c), err_of(&mut rc, c), "{:?}", c[4..].len());
    }
    // A valid footer over a body that does not decode.
    let body = [0x00u8, 0x45, 0x0a, 0x00];
    let crc = ferrokv::persist::crc64::update(0, &body);
    let mut bogus = body.to_vec();
    bogus.extend_from_slice(&crc.to_le_bytes());
    let c: Vec<&[u8]> = vec![b"RESTORE", b"y", b"0", &bogus];
    assert_eq!(err_of(&mut fc, &c), "ERR Bad data format");
    assert_eq!(err_of(&mut rc, &c), "ERR Bad data format");
    // TTLs, ABSTTL, REPLACE, and a TTL already past.
    for con in [&mut fc, &mut rc] {
        let _: () = q(con, &[b"RESTORE", b"t1", b"100000", &good]);
        let pttl: i64 = q(con, &[b"PTTL", b"t1"]);
        assert!(pttl > 99_000 && pttl <= 100_000);
        let _: () = q(
            con,
            &[b"RESTORE", b"t1", b"1", &good, b"REPLACE", b"ABSTTL"],
        );
        let gone: i64 = q(con, &[b"EXISTS", b"t1"]);
        assert_eq!(gone, 0);
        let _: () = q(con, &[b"RESTORE", b"t2", b"0", &good, b"IDLETIME", b"1000"]);
        let idle: i64 = q(con, &[b"OBJECT", b"IDLETIME", b"t2"]);
        assert!((1000..1003).contains(&idle), "{idle}");
        let missing: Option<Vec<u8>> = q(con, &[b"DUMP", b"no-such-key"]);
        assert_eq!(missing, None);
    }
}

/// Starts ferrokv on `dir` expecting it to refuse: returns its stderr.
fn start_fails(dir: &Dir) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokv"))
        .args(["--port", &common::free_port().to_string(), "--dir"])
        .arg(dir.path())
        .args(["--save", ""])
        .output()
        .expect("run ferrokv");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn restart_keeps_data_and_damaged_files_stop_start_up() {
    let dir = Dir::new("restart");
    let expected = {
        let mut f = ferrokv_in(&dir, &[]);
        let mut c = f.connection();
        fill(&mut c);
        let s = snapshot(&mut c);
        let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<Value>(&mut c);
        assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(0));
        s
    };
    {
        let f = ferrokv_in(&dir, &[]);
        assert_eq!(snapshot(&mut f.connection()), expected);
        let info: String = q(&mut f.connection(), &[b"INFO", b"persistence"]);
        assert!(info.contains(&format!("rdb_last_load_keys_loaded:{}", expected.len())));
    }
    let good = std::fs::read(dump_file(&dir)).expect("dump written");
    // Truncated anywhere: a message naming the offset, exit code 1.
    for cut in [5, 9, 40, good.len() / 2, good.len() - 9, good.len() - 1] {
        std::fs::write(dump_file(&dir), &good[..cut]).expect("write");
        let err = start_fails(&dir);
        assert!(
            err.contains("Bad RDB file") && err.contains("offset"),
            "{err}"
        );
    }
    // One flipped byte in a value: the checksum catches it.
    let mut bad = good.clone();
    let at = bad.len() - 20;
    bad[at] ^= 0x20;
    std::fs::write(dump_file(&dir), &bad).expect("write");
    let err = start_fails(&dir);
    assert!(
        err.contains("Bad RDB file") && err.contains("offset"),
        "{err}"
    );
    // SIGTERM saves when save points are configured.
    std::fs::write(dump_file(&dir), &good).expect("write");
    let mut f = ferrokv_in(&dir, &["--save", "3600 1"]);
    let _: () = q(&mut f.connection(), &[b"SET", b"after-restart", b"1"]);
    // Safety: plain kill(2) on our own child.
    unsafe { libc::kill(f.pid() as i32, libc::SIGTERM) };
    assert_eq!(f.wait_exit(Duration::from_secs(10)), Some(0));
    let f = ferrokv_in(&dir, &[]);
    let v: Option<String> = q(&mut f.connection(), &[b"GET", b"after-restart"]);
    assert_eq!(v.as_deref(), Some("1"));
}

fn wait_bgsave(con: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while info_field(con, "rdb_bgsave_in_progress") != "0" {
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const LIB_A: &[u8] = b"#!lua name=liba\nredis.register_function('fa', function(keys, args) return redis.call('GET', keys[1]) end)";
const LIB_B: &[u8] = b"#!lua name=libb\nredis.register_function{function_name='fb', callback=function() return 2 end, flags={'no-writes'}, description='a function with a description long enough to be compressed'}";

/// FUNCTION LIST WITHCODE, one library at a time (Redis lists them in
/// hash order).
fn libraries(con: &mut redis::Connection) -> Vec<Value> {
    ["liba", "libb"]
        .iter()
        .map(|lib| {
            q(
                con,
                &[
                    b"FUNCTION",
                    b"LIST",
                    b"LIBRARYNAME",
                    lib.as_bytes(),
                    b"WITHCODE",
                ],
            )
        })
        .collect()
}

/// Libraries travel in RDB files both ways (written ahead of the
/// databases, as Redis 7.0 does), by SAVE and by BGSAVE, and still run.
#[test]
fn functions_travel_in_rdb_files_both_ways() {
    let dir = Dir::new("functions-r2f");
    let expected = {
        let r = redis_in(&dir);
        let mut rc = r.connection();
        for lib in [LIB_A, LIB_B] {
            let _: String = q(&mut rc, &[b"FUNCTION", b"LOAD", lib]);
        }
        let _: () = q(&mut rc, &[b"SET", b"k", b"v"]);
        let _: () = q(&mut rc, &[b"SAVE"]);
        libraries(&mut rc)
    };
    let f = ferrokv_in(&dir, &[]);
    let mut fc = f.connection();
    assert_eq!(libraries(&mut fc), expected);
    let v: String = q(&mut fc, &[b"FCALL", b"fa", b"1", b"k"]);
    assert_eq!(v, "v");
    drop(f);

    for (tag, save) in [("sync", &b"SAVE"[..]), ("background", b"BGSAVE")] {
        let dir = Dir::new(&format!("functions-f2r-{tag}"));
        let f = ferrokv_in(&dir, &[]);
        let mut fc = f.connection();
        for lib in [LIB_A, LIB_B] {
            let _: String = q(&mut fc, &[b"FUNCTION", b"LOAD", lib]);
        }
        let _: () = q(&mut fc, &[b"SET", b"k", b"v"]);
        let _: Value = q(&mut fc, &[save]);
        wait_bgsave(&mut fc);
        // Changed after the save: the file keeps what was saved (the
        // process is killed, not shut down).
        let _: () = q(&mut fc, &[b"FUNCTION", b"DELETE", b"libb"]);
        let _: String = q(
            &mut fc,
            &[b"FUNCTION", b"LOAD", &LIB_B.to_ascii_lowercase()],
        );
        drop(fc);
        drop(f);
        let out = Command::new("redis-check-rdb")
            .arg(dump_file(&dir))
            .output()
            .expect("run redis-check-rdb (apt-get install redis-tools)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("RDB looks OK"),
            "{text}"
        );
        let r = redis_in(&dir);
        let mut rc = r.connection();
        assert_eq!(libraries(&mut rc), expected, "{tag}");
        let v: String = q(&mut rc, &[b"FCALL", b"fa", b"1", b"k"]);
        assert_eq!(v, "v");
    }
}

/// The snapshot is the keyspace at the instant BGSAVE ran. One connection
/// increments 1000 counters round-robin and issues BGSAVE between two of
/// its own INCRs, so the value of every counter at that instant is known
/// exactly; it then keeps incrementing (and deleting filler keys) until the
/// save is done, while other connections write elsewhere.
#[test]
fn bgsave_is_a_point_in_time_snapshot_under_concurrent_writes() {
    let dir = Dir::new("bgsave");
    let f = ferrokv_in(&dir, &[]);
    let mut c = f.connection();
    const COUNTERS: usize = 1000;
    const FILLER: usize = 100_000;
    for chunk in (0..FILLER).collect::<Vec<_>>().chunks(1000) {
        let mut cmd = redis::cmd("MSET");
        for i in chunk {
            cmd.arg(format!("filler:{i}")).arg(format!("{i:0>60}"));
        }
        let _: () = cmd.query(&mut c).expect("MSET");
    }
    let mut done = 0usize; // increments issued so far
    let incr = |c: &mut redis::Connection, n: usize, done: &mut usize| {
        let mut p = redis::pipe();
        for _ in 0..n {
            p.cmd("INCR")
                .arg(format!("ctr:{}", *done % COUNTERS))
                .ignore();
            *done += 1;
        }
        let _: () = p.query(c).expect("INCR batch");
    };
    incr(&mut c, 2 * COUNTERS + 337, &mut done);
    let at_bgsave = done;
    let started: String = q(&mut c, &[b"BGSAVE"]);
    assert_eq!(started, "Background saving started");
    let others: Vec<_> = (0..2)
        .map(|t| {
            let mut oc = f.connection();
            std::thread::spawn(move || {
                for i in 0..3000 {
                    let _: () = redis::cmd("SET")
                        .arg(format!("other:{t}:{i}"))
                        .arg(i)
                        .query(&mut oc)
                        .expect("SET");
                }
            })
        })
        .collect();
    let mut deleted = 0;
    while info_field(&mut c, "rdb_bgsave_in_progress") == "1" {
        incr(&mut c, 500, &mut done);
        let _: () = q(&mut c, &[b"DEL", format!("filler:{deleted}").as_bytes()]);
        deleted += 1;
    }
    for t in others {
        t.join().expect("writer thread");
    }
    assert!(done > at_bgsave, "no write overlapped the save");
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    // Writers got to keys before the saver did, and kept their records.
    let kept: u64 = info_field(&mut c, "rdb_last_kept_keys")
        .parse()
        .unwrap_or(0);
    assert!(kept > 0, "no writer kept a record for the snapshot");
    let held: u64 = info_field(&mut c, "rdb_last_cow_size").parse().unwrap_or(0);
    assert!(held > 0, "the snapshot's extra memory was not reported");
    // Load the dump into a fresh server.
    let copy = Dir::new("bgsave-load");
    std::fs::copy(dump_file(&dir), dump_file(&copy)).expect("copy dump");
    let g = ferrokv_in(&copy, &[]);
    let mut gc = g.connection();
    for i in 0..COUNTERS {
        let expected = at_bgsave / COUNTERS + usize::from(i < at_bgsave % COUNTERS);
        let v: Option<usize> = q(&mut gc, &[b"GET", format!("ctr:{i}").as_bytes()]);
        assert_eq!(v, Some(expected).filter(|&n| n > 0), "ctr:{i}");
    }
    let fillers: Vec<String> = q(&mut gc, &[b"KEYS", b"filler:*"]);
    assert_eq!(fillers.len(), FILLER, "deleted {deleted} during the save");
    let others: Vec<String> = q(&mut gc, &[b"KEYS", b"other:*"]);
    assert!(
        others.is_empty(),
        "{} writes after BGSAVE leaked in",
        others.len()
    );
}

/// SIGKILL while a BGSAVE writes (made slow with `rdb-key-save-delay`,
/// Redis's testing aid): the restarted server loads the last completed
/// dump; the half-written temporary file is never picked up.
#[test]
fn sigkill_during_bgsave_keeps_the_previous_dump() {
    let dir = Dir::new("bgsave-kill");
    let mut f = ferrokv_in(&dir, &[]);
    let mut c = f.connection();
    fill(&mut c);
    let _: () = q(&mut c, &[b"SAVE"]);
    let saved = snapshot(&mut c);
    // Changes the interrupted save would have written.
    for i in 0..300 {
        let _: () = q(&mut c, &[b"SET", format!("after:{i}").as_bytes(), b"x"]);
    }
    let _: i64 = q(&mut c, &[b"DEL", b"short", b"zbig"]);
    // About 530 keys at 5 ms each: the save takes seconds.
    let _: () = q(&mut c, &[b"CONFIG", b"SET", b"rdb-key-save-delay", b"5000"]);
    let _: String = q(&mut c, &[b"BGSAVE"]);
    let temp_files = || -> Vec<PathBuf> {
        std::fs::read_dir(&dir.0)
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("temp-"))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while temp_files().is_empty() {
        assert!(Instant::now() < deadline, "BGSAVE wrote no temporary file");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(info_field(&mut c, "rdb_bgsave_in_progress"), "1");
    // Safety: plain kill(2) on our own child.
    unsafe { libc::kill(f.pid() as i32, libc::SIGKILL) };
    f.wait_exit(Duration::from_secs(10));
    drop(f);
    assert!(
        !temp_files().is_empty(),
        "the interrupted save left no file"
    );
    let g = ferrokv_in(&dir, &[]);
    let mut gc = g.connection();
    assert_eq!(snapshot(&mut gc), saved);
    // The next save completes and replaces the dump.
    let _: () = q(&mut gc, &[b"SET", b"after-restart", b"1"]);
    let _: String = q(&mut gc, &[b"BGSAVE"]);
    wait_bgsave(&mut gc);
    let expected = snapshot(&mut gc);
    drop(gc);
    drop(g);
    let h = ferrokv_in(&dir, &[]);
    assert_eq!(snapshot(&mut h.connection()), expected);
}

#[test]
fn failing_saves_turn_writes_away_until_saving_works() {
    let dir = Dir::new("misconf");
    let gone = Dir::new("misconf-gone");
    let f = ferrokv_in(&gone, &["--save", "3600 1"]);
    let mut c = f.connection();
    // The server's working directory vanishes: no file can be created.
    std::fs::remove_dir_all(&gone.0).expect("remove dir");
    let _: () = q(&mut c, &[b"SET", b"k", b"v"]);
    let _: String = q(&mut c, &[b"BGSAVE"]);
    wait_bgsave(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "err");
    let misconf = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
    assert_eq!(err_of(&mut c, &[b"SET", b"k", b"w"]), misconf);
    assert_eq!(err_of(&mut c, &[b"PING"]), misconf);
    let v: String = q(&mut c, &[b"GET", b"k"]);
    assert_eq!(v, "v");
    assert_eq!(err_of(&mut c, &[b"SAVE"]), "ERR");
    // Fixed: a good directory, a successful save, writes accepted again.
    let _: () = q(&mut c, &[b"CONFIG", b"SET", b"dir", dir.path().as_bytes()]);
    let _: String = q(&mut c, &[b"BGSAVE"]);
    wait_bgsave(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    let _: () = q(&mut c, &[b"SET", b"k", b"w"]);
    assert!(Path::new(&dump_file(&dir)).exists());
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "1");
    // stop-writes-on-bgsave-error no: failures no longer block writes.
    let _: () = q(
        &mut c,
        &[b"CONFIG", b"SET", b"stop-writes-on-bgsave-error", b"no"],
    );
    let _: () = q(&mut c, &[b"SET", b"k", b"x"]);
}

#[test]
fn save_commands_reply_as_redis() {
    let dir = Dir::new("cmds");
    let f = ferrokv_in(&dir, &[]);
    let mut c = f.connection();
    let before: i64 = q(&mut c, &[b"LASTSAVE"]);
    std::thread::sleep(Duration::from_millis(1100));
    let _: () = q(&mut c, &[b"SAVE"]);
    let after: i64 = q(&mut c, &[b"LASTSAVE"]);
    assert!(after > before);
    assert_eq!(err_of(&mut c, &[b"BGSAVE", b"x"]), "ERR syntax error");
    let s: String = q(&mut c, &[b"BGSAVE", b"SCHEDULE"]);
    assert_eq!(s, "Background saving started");
    wait_bgsave(&mut c);
    let replies: Vec<Value> = redis::pipe()
        .atomic()
        .cmd("BGSAVE")
        .query(&mut c)
        .expect("MULTI BGSAVE EXEC");
    assert_eq!(
        replies,
        vec![Value::SimpleString("Background saving scheduled".into())]
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut c, "rdb_saves") != "3" {
        assert!(Instant::now() < deadline, "scheduled BGSAVE never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let policy: Vec<String> = q(&mut c, &[b"CONFIG", b"GET", b"save"]);
    assert_eq!(policy, vec!["save".to_string(), String::new()]);
    let _: () = q(&mut c, &[b"CONFIG", b"SET", b"save", b"100 5 200 6"]);
    let policy: Vec<String> = q(&mut c, &[b"CONFIG", b"GET", b"save"]);
    assert_eq!(policy[1], "100 5 200 6");
}

/// INFO persistence follows a BGSAVE as Redis's fields follow its child:
/// the keys written so far out of all, the percentage, and the bytes the
/// snapshot holds beside the data set (records writers kept) now and at
/// most; all back to zero once it is over, the peak kept as
/// `rdb_last_cow_size`.
#[test]
fn info_follows_a_bgsave_in_progress() {
    const KEYS: usize = 20_000;
    let dir = Dir::new("progress");
    let server = ferrokv_in(&dir, &[]);
    let mut con = server.connection();
    let mut pipe = redis::pipe();
    for i in 0..KEYS {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    let () = pipe.query(&mut con).unwrap();
    // 100 µs a key: two seconds in all.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdb-key-save-delay")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let _: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    let field = |con: &mut redis::Connection, name: &str| -> f64 {
        info_field(con, name)
            .parse()
            .unwrap_or_else(|_| panic!("no {name} in INFO persistence"))
    };
    assert_eq!(field(&mut con, "current_save_keys_total"), KEYS as f64);
    // Every key changed while the saver is at work: those it has not
    // reached yet keep their records.
    let mut pipe = redis::pipe();
    for i in 0..KEYS {
        pipe.cmd("SET").arg(format!("k{i}")).arg("changed").ignore();
    }
    let () = pipe.query(&mut con).unwrap();
    let mut processed = Vec::new();
    let mut held = 0.0f64;
    while field(&mut con, "rdb_bgsave_in_progress") == 1.0 {
        let (done, total, perc) = (
            field(&mut con, "current_save_keys_processed"),
            field(&mut con, "current_save_keys_total"),
            field(&mut con, "current_fork_perc"),
        );
        if total > 0.0 {
            assert!(done <= total, "{done} of {total}");
            assert!(
                (perc - done * 100.0 / total).abs() < 5.0,
                "{perc}% for {done} of {total}"
            );
            processed.push(done);
        }
        held = held.max(field(&mut con, "current_cow_size"));
        assert!(field(&mut con, "current_cow_peak") >= field(&mut con, "current_cow_size"));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(processed.len() >= 5, "the save was not seen in progress");
    assert!(processed.windows(2).all(|w| w[0] <= w[1]), "{processed:?}");
    assert!(held > 0.0, "the kept records were never seen");
    for name in [
        "current_cow_peak",
        "current_cow_size",
        "current_fork_perc",
        "current_save_keys_processed",
        "current_save_keys_total",
    ] {
        assert_eq!(field(&mut con, name), 0.0, "{name} after the save");
    }
    assert!(field(&mut con, "rdb_last_cow_size") >= held);
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "ok");
}
