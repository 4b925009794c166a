//! Keyspace commands over TCP where a corpus cannot check them: SCAN's
//! guarantee over a sharded keyspace, KEYS and FLUSHALL ASYNC on many keys,
//! RANDOMKEY's spread.

mod common;

use std::collections::HashSet;

use common::ServerProcess;

fn fill(con: &mut redis::Connection, n: usize) -> HashSet<Vec<u8>> {
    let mut pipe = redis::pipe();
    let mut keys = HashSet::new();
    for i in 0..n {
        let key = format!("key:{i}").into_bytes();
        pipe.cmd("SET").arg(&key).arg(i).ignore();
        keys.insert(key);
    }
    let () = pipe.query(con).expect("pipelined writes");
    keys
}

fn scan_all(con: &mut redis::Connection, extra: &[&str]) -> Vec<Vec<u8>> {
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    loop {
        let (next, keys): (String, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg(extra)
            .query(con)
            .expect("SCAN");
        seen.extend(keys);
        if next == "0" {
            return seen;
        }
        cursor = next;
    }
}

#[test]
fn scan_returns_every_key_once_the_cursor_comes_back() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let keys = fill(&mut con, 5000);

    for count in ["1", "10", "1000"] {
        let seen = scan_all(&mut con, &["COUNT", count]);
        let unique: HashSet<_> = seen.iter().cloned().collect();
        assert_eq!(unique, keys, "COUNT {count}");
        // Without resizing during the scan, no key comes back twice.
        assert_eq!(seen.len(), keys.len(), "COUNT {count}");
    }

    let seen = scan_all(&mut con, &["MATCH", "key:1?", "COUNT", "100"]);
    let unique: HashSet<_> = seen.into_iter().collect();
    let expected: HashSet<Vec<u8>> = (10..20).map(|i| format!("key:{i}").into_bytes()).collect();
    assert_eq!(unique, expected);
}

#[test]
fn scan_keeps_its_guarantee_while_keys_come_and_go() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let stable = fill(&mut con, 2000);
    let mut writer = server.connection();

    let mut cursor = "0".to_string();
    let mut seen = HashSet::new();
    let mut round = 0;
    loop {
        let (next, keys): (String, Vec<Vec<u8>>) =
            redis::cmd("SCAN").arg(&cursor).query(&mut con).unwrap();
        seen.extend(keys);
        // Grow the keyspace (and so the shards' tables) mid-scan, then
        // shrink it again.
        let mut pipe = redis::pipe();
        for i in 0..200 {
            let key = format!("tmp:{round}:{i}");
            if round < 20 {
                pipe.cmd("SET").arg(key).arg(1).ignore();
            } else {
                pipe.cmd("DEL")
                    .arg(format!("tmp:{}:{i}", round - 20))
                    .ignore();
            }
        }
        let () = pipe.query(&mut writer).unwrap();
        round += 1;
        if next == "0" {
            break;
        }
        cursor = next;
    }
    for key in &stable {
        assert!(seen.contains(key), "{}", String::from_utf8_lossy(key));
    }
}

#[test]
fn keys_and_flushall_async_on_many_keys() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let keys = fill(&mut con, 20_000);

    let all: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(all.into_iter().collect::<HashSet<_>>(), keys);
    let some: Vec<Vec<u8>> = redis::cmd("KEYS").arg("key:1999?").query(&mut con).unwrap();
    assert_eq!(some.len(), 10);

    let () = redis::cmd("FLUSHALL").arg("ASYNC").query(&mut con).unwrap();
    let n: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 0);
    // The server goes on serving while the old tables are freed.
    fill(&mut con, 100);
    let n: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 100);
}

#[test]
fn randomkey_reaches_every_key() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let keys = fill(&mut con, 20);
    let mut seen = HashSet::new();
    for _ in 0..2000 {
        let k: Vec<u8> = redis::cmd("RANDOMKEY").query(&mut con).unwrap();
        assert!(keys.contains(&k));
        seen.insert(k);
    }
    assert_eq!(seen, keys);
}
