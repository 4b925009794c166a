//! The command table against real Redis 7.0: for every command (and
//! subcommand) ferrokv's COMMAND lists, its name, arity, flags,
//! first/last/step and ACL categories must equal what redis-server's
//! COMMAND INFO says. The test fails with the list of every mismatch.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::ServerProcess;

/// A parsed RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Str(String),
    Int(i64),
    Nil,
    Arr(Vec<V>),
}

fn read(r: &mut BufReader<TcpStream>) -> V {
    let mut line = String::new();
    r.read_line(&mut line).expect("read reply line");
    let (kind, rest) = line.trim_end().split_at(1);
    match kind {
        "+" => V::Str(rest.to_string()),
        "-" => panic!("error reply: {rest}"),
        ":" => V::Int(rest.parse().expect("integer")),
        "$" => {
            let n: i64 = rest.parse().expect("length");
            if n < 0 {
                return V::Nil;
            }
            let mut b = vec![0; n as usize + 2];
            r.read_exact(&mut b).expect("bulk body");
            b.truncate(n as usize);
            V::Str(String::from_utf8_lossy(&b).into_owned())
        }
        "*" => {
            let n: i64 = rest.parse().expect("count");
            V::Arr((0..n.max(0)).map(|_| read(r)).collect())
        }
        other => panic!("unexpected reply type {other:?}"),
    }
}

fn query(port: u16, args: &[&str]) -> V {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    let mut r = BufReader::new(stream);
    r.get_mut().write_all(out.as_bytes()).expect("write");
    read(&mut r)
}

/// The fields compared, from one COMMAND INFO entry.
#[derive(Debug, PartialEq)]
struct Meta {
    arity: i64,
    flags: BTreeSet<String>,
    keys: (i64, i64, i64),
    categories: BTreeSet<String>,
}

fn strings(v: &V) -> BTreeSet<String> {
    match v {
        V::Arr(items) => items
            .iter()
            .map(|i| match i {
                V::Str(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn int(v: &V) -> i64 {
    match v {
        V::Int(n) => *n,
        _ => i64::MIN,
    }
}

/// Splits an entry into (name, metadata, subcommand entries).
fn parse(entry: &V) -> (String, Meta, Vec<V>) {
    let V::Arr(f) = entry else {
        panic!("COMMAND INFO entry is not an array: {entry:?}")
    };
    let V::Str(name) = &f[0] else {
        panic!("no name in {entry:?}")
    };
    let meta = Meta {
        arity: int(&f[1]),
        flags: strings(&f[2]),
        keys: (int(&f[3]), int(&f[4]), int(&f[5])),
        categories: strings(&f[6]),
    };
    let subs = match f.get(9) {
        Some(V::Arr(s)) => s.clone(),
        _ => Vec::new(),
    };
    (name.clone(), meta, subs)
}

fn compare(name: &str, ours: &Meta, theirs: &Meta, out: &mut Vec<String>) {
    if ours.arity != theirs.arity {
        out.push(format!(
            "{name}: arity {} (redis {})",
            ours.arity, theirs.arity
        ));
    }
    if ours.flags != theirs.flags {
        out.push(format!(
            "{name}: flags {:?} (redis {:?})",
            ours.flags, theirs.flags
        ));
    }
    if ours.keys != theirs.keys {
        out.push(format!(
            "{name}: first/last/step {:?} (redis {:?})",
            ours.keys, theirs.keys
        ));
    }
    if ours.categories != theirs.categories {
        out.push(format!(
            "{name}: ACL categories {:?} (redis {:?})",
            ours.categories, theirs.categories
        ));
    }
}

#[test]
fn every_command_matches_redis_command_info() {
    let ferrokv = ServerProcess::ferrokv(&[]);
    let redis = ServerProcess::redis(&[]);
    let V::Arr(ours) = query(ferrokv.port, &["COMMAND"]) else {
        panic!("COMMAND is not an array")
    };
    assert!(!ours.is_empty());
    let mut mismatches = Vec::new();
    for entry in &ours {
        let (name, meta, subs) = parse(entry);
        let V::Arr(theirs) = query(redis.port, &["COMMAND", "INFO", &name]) else {
            panic!("bad COMMAND INFO reply")
        };
        let Some(t) = theirs.first().filter(|t| **t != V::Nil) else {
            mismatches.push(format!("{name}: unknown to Redis"));
            continue;
        };
        let (_, their_meta, their_subs) = parse(t);
        compare(&name, &meta, &their_meta, &mut mismatches);
        let their_subs: Vec<(String, Meta, Vec<V>)> = their_subs.iter().map(parse).collect();
        for sub in &subs {
            let (sub_name, sub_meta, _) = parse(sub);
            match their_subs.iter().find(|(n, _, _)| *n == sub_name) {
                Some((_, m, _)) => compare(&sub_name, &sub_meta, m, &mut mismatches),
                None => mismatches.push(format!("{sub_name}: unknown to Redis")),
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatch(es) with Redis's COMMAND INFO:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
