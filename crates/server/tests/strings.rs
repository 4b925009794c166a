//! String commands near proto-max-bulk-len, compared with real Redis 7.0.
//! Both servers start with a 1mb limit so that the limit errors of APPEND,
//! SETRANGE and LCS can be reached without building 512MB strings (the
//! corpus runs on default configurations only).

mod common;

use common::ServerProcess;

/// The reply of one command, with error replies kept as their text.
fn run(con: &mut redis::Connection, args: &[Vec<u8>]) -> Result<redis::Value, String> {
    let mut cmd = redis::cmd(std::str::from_utf8(&args[0]).unwrap());
    for a in &args[1..] {
        cmd.arg(&a[..]);
    }
    cmd.query(con).map_err(|e| e.to_string())
}

fn words(line: &str) -> Vec<Vec<u8>> {
    line.split(' ').map(|w| w.as_bytes().to_vec()).collect()
}

#[test]
fn limits_follow_proto_max_bulk_len() {
    let limit = ["--proto-max-bulk-len", "1mb"];
    let ours = ServerProcess::ferrokv(&limit);
    let redis = ServerProcess::redis(&limit);
    let (mut a, mut b) = (ours.connection(), redis.connection());
    let mut script: Vec<Vec<Vec<u8>>> = [
        "SETRANGE big 1048570 x",
        "STRLEN big",
        "APPEND big abcdef",
        "APPEND big abcde",
        "APPEND big x",
        "SETRANGE big 1048576 x",
        "SETRANGE big 1048575 y",
        "SETRANGE big 1048576 \"\"",
        "SETRANGE new 1048576 x",
        "SETRANGE new 1048575 x",
        "STRLEN new",
        "GETRANGE big 1048570 -1",
        "SETRANGE big 9223372036854775807 x",
    ]
    .iter()
    .map(|l| words(l))
    .collect();
    // The LCS table (4 bytes a cell) must stay under the limit too.
    for n in [500, 600] {
        let s = "ab".repeat(n / 2).into_bytes();
        script.push(vec![
            b"MSET".to_vec(),
            b"l1".to_vec(),
            s.clone(),
            b"l2".to_vec(),
            s,
        ]);
        script.push(words("LCS l1 l2 LEN"));
    }
    for args in &script {
        let (x, y) = (run(&mut a, args), run(&mut b, args));
        assert_eq!(x, y, "{}", String::from_utf8_lossy(&args.concat()));
    }
}
