//! Blocking sorted-set pops (BZPOPMIN, BZPOPMAX, BZMPOP) over TCP: served
//! by a later ZADD, oldest waiter first, null array on timeout, and an
//! immediate null inside MULTI.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::ServerProcess;
use redis::Value;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// Waits until the server reports `n` blocked clients.
fn wait_blocked(con: &mut redis::Connection, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
        if info.contains(&format!("blocked_clients:{n}\r\n")) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {n} blocked clients");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bzpopmin_is_served_by_a_later_zadd() {
    let server = ServerProcess::ferrokv(&[]);
    let mut waiter = server.connection();
    let h = thread::spawn(move || {
        let v: Value = redis::cmd("BZPOPMIN")
            .arg("nokey")
            .arg("z")
            .arg(0)
            .query(&mut waiter)
            .unwrap();
        v
    });
    let mut con = server.connection();
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("ZADD")
        .arg("z")
        .arg(2)
        .arg("b")
        .arg(1)
        .arg("a")
        .query(&mut con)
        .unwrap();
    let v = h.join().unwrap();
    assert_eq!(v, Value::Array(vec![bulk("z"), bulk("a"), bulk("1")]));
    let left: Vec<String> = redis::cmd("ZRANGE")
        .arg("z")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(left, vec!["b"]);
}

#[test]
fn waiters_are_served_oldest_first() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let mut handles = Vec::new();
    for i in 0..3 {
        let mut w = server.connection();
        handles.push(thread::spawn(move || {
            let v: Value = redis::cmd("BZPOPMAX")
                .arg("z")
                .arg(5)
                .query(&mut w)
                .unwrap();
            v
        }));
        wait_blocked(&mut con, i + 1);
    }
    // One ZADD of three members: each waiter, oldest first, takes the
    // highest score left.
    let _: i64 = redis::cmd("ZADD")
        .arg("z")
        .arg(1)
        .arg("a")
        .arg(2)
        .arg("b")
        .arg(3)
        .arg("c")
        .query(&mut con)
        .unwrap();
    let got: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        got,
        vec![
            Value::Array(vec![bulk("z"), bulk("c"), bulk("3")]),
            Value::Array(vec![bulk("z"), bulk("b"), bulk("2")]),
            Value::Array(vec![bulk("z"), bulk("a"), bulk("1")]),
        ]
    );
    let exists: i64 = redis::cmd("EXISTS").arg("z").query(&mut con).unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn bzmpop_takes_a_count_from_the_first_ready_key() {
    let server = ServerProcess::ferrokv(&[]);
    let mut waiter = server.connection();
    let h = thread::spawn(move || {
        let v: Value = redis::cmd("BZMPOP")
            .arg(0)
            .arg(2)
            .arg("z1")
            .arg("z2")
            .arg("MIN")
            .arg("COUNT")
            .arg(2)
            .query(&mut waiter)
            .unwrap();
        v
    });
    let mut con = server.connection();
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("ZADD")
        .arg("z2")
        .arg(1.5)
        .arg("x")
        .arg(2)
        .arg("y")
        .arg(3)
        .arg("z")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        h.join().unwrap(),
        Value::Array(vec![
            bulk("z2"),
            Value::Array(vec![
                Value::Array(vec![bulk("x"), bulk("1.5")]),
                Value::Array(vec![bulk("y"), bulk("2")]),
            ]),
        ])
    );
}

#[test]
fn a_write_that_is_not_to_a_zset_does_not_serve() {
    let server = ServerProcess::ferrokv(&[]);
    let mut waiter = server.connection();
    let h = thread::spawn(move || {
        let v: Value = redis::cmd("BZPOPMIN")
            .arg("k")
            .arg(0)
            .query(&mut waiter)
            .unwrap();
        v
    });
    let mut con = server.connection();
    wait_blocked(&mut con, 1);
    // A string at the key does not serve the waiter (Redis 7.0 keeps it
    // blocked); the sorted set written later does.
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let _: i64 = redis::cmd("DEL").arg("k").query(&mut con).unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg("k")
        .arg(1)
        .arg("m")
        .query(&mut con)
        .unwrap();
    let v = h.join().unwrap();
    assert_eq!(v, Value::Array(vec![bulk("k"), bulk("m"), bulk("1")]));
}

#[test]
fn timeouts_reply_a_null_array() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let start = Instant::now();
    let v: Value = redis::cmd("BZPOPMIN")
        .arg("z")
        .arg(0.1)
        .query(&mut con)
        .unwrap();
    assert_eq!(v, Value::Nil);
    assert!(start.elapsed() >= Duration::from_millis(100));
    let v: Value = redis::cmd("BZMPOP")
        .arg(0.05)
        .arg(1)
        .arg("z")
        .arg("MAX")
        .query(&mut con)
        .unwrap();
    assert_eq!(v, Value::Nil);
    let exists: i64 = redis::cmd("EXISTS").arg("z").query(&mut con).unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn inside_multi_an_empty_pop_does_not_block() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let v: Value = redis::pipe()
        .atomic()
        .cmd("BZPOPMIN")
        .arg("z")
        .arg(0)
        .cmd("ZADD")
        .arg("z")
        .arg(1)
        .arg("a")
        .cmd("BZPOPMAX")
        .arg("z")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert_eq!(
        v,
        Value::Array(vec![
            Value::Nil,
            Value::Int(1),
            Value::Array(vec![bulk("z"), bulk("a"), bulk("1")]),
        ])
    );
}
