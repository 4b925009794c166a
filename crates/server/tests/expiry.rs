//! Expiry end to end: the active cycle reclaims keys nobody touches again,
//! lookups reclaim expired keys lazily, and the TTL family agrees with
//! itself.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::ServerProcess;

/// `used_memory` from INFO memory, or None while the server has no INFO
/// (it belongs to another command family; where it is missing only the
/// key counts are checked).
fn used_memory(con: &mut redis::Connection) -> Option<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query(con).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
}

fn dbsize(con: &mut redis::Connection) -> u64 {
    redis::cmd("DBSIZE").query(con).expect("DBSIZE")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[test]
fn active_expiry_reclaims_a_million_untouched_keys() {
    const KEYS: usize = 1_000_000;
    const BATCH: usize = 10_000;
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let baseline = used_memory(&mut con);

    for batch in 0..KEYS / BATCH {
        let mut pipe = redis::pipe();
        for i in 0..BATCH {
            let key = format!("key:{}", batch * BATCH + i);
            pipe.cmd("SET").arg(&key).arg("some value").ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(1000).ignore();
        }
        let () = pipe.query(&mut con).expect("pipelined writes");
    }

    // From here on no client looks at the keys: only the active cycle can
    // reclaim them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = dbsize(&mut con);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} keys still present 10 s after the last write"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    if let (Some(before), Some(after)) = (baseline, used_memory(&mut con)) {
        assert!(
            after < before + 20 * 1024 * 1024,
            "used_memory {after} did not come back near {before} after expiry"
        );
    }
}

/// INFO stats' figures of the active cycle: keys that all expire at the
/// same moment take it more than one 25 ms budget, so it stops at its time
/// limit; the time it spent adds up; and the estimate of expired keys
/// still present rises (Redis moves it 5% towards each cycle's share).
#[test]
fn info_shows_the_active_cycles_figures() {
    const KEYS: usize = 150_000;
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    for batch in 0..KEYS / 10_000 {
        let mut pipe = redis::pipe();
        for i in 0..10_000 {
            pipe.cmd("SET")
                .arg(format!("key:{}", batch * 10_000 + i))
                .arg("v")
                .ignore();
        }
        let () = pipe.query(&mut con).expect("pipelined writes");
    }
    // One script gives every key the same deadline, with no cycle
    // running in between.
    let () = redis::cmd("EVAL")
        .arg(
            "for i = 0, tonumber(ARGV[1]) - 1 do redis.call('PEXPIREAT', 'key:' .. i, ARGV[2]) end",
        )
        .arg(0)
        .arg(KEYS)
        .arg(now_ms() + 300)
        .query(&mut con)
        .expect("EVAL");
    let stats = |con: &mut redis::Connection| -> String {
        redis::cmd("INFO").arg("stats").query(con).unwrap()
    };
    let stat = |info: &str, name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO stats"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let info = loop {
        let info = stats(&mut con);
        if stat(&info, "expired_keys") == KEYS as f64 {
            break info;
        }
        assert!(Instant::now() < deadline, "the keys never all expired");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(stat(&info, "expired_time_cap_reached_count") >= 1.0);
    assert!(stat(&info, "expire_cycle_cpu_milliseconds") >= 25.0);
    assert!(stat(&info, "expired_stale_perc") > 0.0);
    // CONFIG RESETSTAT clears them, as Redis's resetServerStats does.
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
    let reset = stats(&mut con);
    assert_eq!(stat(&reset, "expired_time_cap_reached_count"), 0.0);
    assert!(stat(&reset, "expire_cycle_cpu_milliseconds") < 25.0);
}

#[test]
fn lookups_reclaim_expired_keys() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let set: i64 = redis::cmd("PEXPIRE")
        .arg("k")
        .arg(50)
        .query(&mut con)
        .unwrap();
    assert_eq!(set, 1);
    let v: Option<Vec<u8>> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v.as_deref(), Some(&b"v"[..]));
    std::thread::sleep(Duration::from_millis(100));
    let v: Option<Vec<u8>> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, None);
    let n: i64 = redis::cmd("EXISTS").arg("k").query(&mut con).unwrap();
    assert_eq!(n, 0);
    assert_eq!(dbsize(&mut con), 0);
}

#[test]
fn ttl_family_agrees() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let int = |con: &mut redis::Connection, cmd: &str, key: &str| -> i64 {
        redis::cmd(cmd).arg(key).query(con).expect(cmd)
    };

    let () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let before = now_ms();
    let set: i64 = redis::cmd("EXPIRE")
        .arg("k")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let after = now_ms();
    assert_eq!(set, 1);

    let ttl = int(&mut con, "TTL", "k");
    let pttl = int(&mut con, "PTTL", "k");
    let at = int(&mut con, "EXPIRETIME", "k");
    let pat = int(&mut con, "PEXPIRETIME", "k");
    assert!((99..=100).contains(&ttl), "TTL {ttl}");
    assert!((99_000..=100_000).contains(&pttl), "PTTL {pttl}");
    assert!(
        (before + 100_000..=after + 100_000).contains(&pat),
        "PEXPIRETIME {pat} not within [{before}, {after}] + 100 s"
    );
    assert_eq!(at, (pat + 500) / 1000, "EXPIRETIME rounds PEXPIRETIME");
    let remaining = pat - now_ms();
    assert!((pttl - remaining).abs() <= 50, "PTTL {pttl} vs {remaining}");

    // An absolute expiry reads back exactly.
    let set: i64 = redis::cmd("PEXPIREAT")
        .arg("k")
        .arg(4_102_444_800_500i64)
        .query(&mut con)
        .unwrap();
    assert_eq!(set, 1);
    assert_eq!(int(&mut con, "PEXPIRETIME", "k"), 4_102_444_800_500);
    assert_eq!(int(&mut con, "EXPIRETIME", "k"), 4_102_444_801);

    // The TTL follows the key through RENAME.
    let () = redis::cmd("RENAME")
        .arg("k")
        .arg("k2")
        .query(&mut con)
        .unwrap();
    assert_eq!(int(&mut con, "PEXPIRETIME", "k2"), 4_102_444_800_500);

    // No TTL: -1 everywhere; no key: -2 everywhere.
    assert_eq!(int(&mut con, "PERSIST", "k2"), 1);
    for cmd in ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"] {
        assert_eq!(int(&mut con, cmd, "k2"), -1, "{cmd} without a TTL");
        assert_eq!(int(&mut con, cmd, "k"), -2, "{cmd} of a missing key");
    }
}

/// INFO keyspace's avg_ttl for database 0, or None while it has no keys.
fn avg_ttl(con: &mut redis::Connection) -> Option<i64> {
    let info: String = redis::cmd("INFO").arg("keyspace").query(con).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("db0:"))
        .and_then(|l| l.split(',').find_map(|f| f.strip_prefix("avg_ttl=")))
        .and_then(|v| v.trim().parse().ok())
}

/// The active cycle estimates the keys' average TTL as Redis does, and
/// drops it to 0 once no key has a TTL.
#[test]
fn avg_ttl_follows_the_keys_ttls() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    assert_eq!(avg_ttl(&mut con), None);
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .arg("EX")
            .arg(100)
            .query(&mut con)
            .expect("SET");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let estimate = loop {
        match avg_ttl(&mut con) {
            Some(ms) if ms > 0 => break ms,
            _ => {
                assert!(Instant::now() < deadline, "avg_ttl stayed 0");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert!((90_000..=100_000).contains(&estimate), "avg_ttl {estimate}");
    for i in 0..100 {
        let _: i64 = redis::cmd("PERSIST")
            .arg(format!("k{i}"))
            .query(&mut con)
            .expect("PERSIST");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while avg_ttl(&mut con) != Some(0) {
        assert!(Instant::now() < deadline, "avg_ttl did not drop to 0");
        std::thread::sleep(Duration::from_millis(50));
    }
}
