//! End-to-end smoke test: a real ferrokv over TCP through the redis crate.

mod common;

use common::ServerProcess;

#[test]
fn set_get_del_round_trip() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg(b"v\x00\xff")
        .query(&mut con)
        .unwrap();
    let v: Vec<u8> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, b"v\x00\xff");
    let n: i64 = redis::cmd("DEL")
        .arg("k")
        .arg("missing")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    let v: Option<Vec<u8>> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, None);
}
