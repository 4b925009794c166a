//! How many event loops take connections (`adaptive-loops`): one while
//! it keeps up, more when every loop in use is saturated, fewer again when
//! the load passes. Clients follow: new ones are dealt to the loops in use
//! and busy ones move between reads.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_for_loops, ServerProcess};

fn loops_active(con: &mut redis::Connection) -> usize {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(con)
        .expect("INFO server");
    info.lines()
        .find_map(|l| l.strip_prefix("loops_active:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO server has loops_active")
}

/// Polls `f` until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn loops_in_use_grow_under_load_and_shrink_when_it_passes() {
    let server = ServerProcess::ferrokv(&["--server-threads", "2", "--adaptive-loops", "yes"]);
    let mut admin = server.connection();
    assert_eq!(loops_active(&mut admin), 1);

    // A light load: every client lands on loop 0.
    let mut light: Vec<redis::Connection> = (0..10).map(|_| server.connection()).collect();
    for con in &mut light {
        let _: String = redis::cmd("PING").query(con).expect("PING");
    }
    let counts = wait_for_loops(&mut admin, |c| c[0] == 11);
    assert_eq!(counts, [11, 0, 0], "a light load spread over the loops");
    assert_eq!(loops_active(&mut admin), 1);

    // Pipelines of a thousand INCRs back to back keep loop 0 from ever
    // sleeping.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let client = server.client();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut con = client.get_connection().expect("connect");
                let key = format!("counter:{i}");
                let mut pipe = redis::pipe();
                for _ in 0..1000 {
                    pipe.cmd("INCR").arg(&key).ignore();
                }
                while !stop.load(Relaxed) {
                    let () = pipe.query(&mut con).expect("INCR pipeline");
                }
            })
        })
        .collect();
    let grew = eventually(Duration::from_secs(30), || loops_active(&mut admin) == 2);
    let spread = grew && wait_for_loops(&mut admin, |c| c[1] > 0)[1] > 0;
    stop.store(true, Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    assert!(grew, "a saturated loop did not bring in the second");
    assert!(spread, "no client moved to the second loop");

    // Idle again: back to one loop.
    assert!(
        eventually(Duration::from_secs(10), || loops_active(&mut admin) == 1),
        "the count stayed up after the load passed"
    );
    // Clients still connected keep being served wherever they are.
    for con in &mut light {
        let _: String = redis::cmd("PING").query(con).expect("PING");
    }
}

#[test]
fn with_adaptive_loops_off_every_loop_takes_connections() {
    let server = ServerProcess::ferrokv(&["--server-threads", "2"]);
    let mut admin = server.connection();
    assert_eq!(loops_active(&mut admin), 2);
    let _others: Vec<redis::Connection> = (0..3).map(|_| server.connection()).collect();
    let counts = wait_for_loops(&mut admin, |c| c[0] == 2 && c[1] == 2);
    assert_eq!(counts, [2, 2, 0]);
}
