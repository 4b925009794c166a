//! The active expiry cycle: a background thread that reclaims keys whose
//! TTL has passed even if no client ever touches them again. Like Redis's
//! serverCron, the same thread samples INFO's per-second rates, peak
//! memory (crate::stats) and scripting's memory figures.
//!
//! Like Redis's slow cycle it runs `hz` times a second with a time budget
//! of a quarter of each period, and keeps working on a shard while more
//! than a tenth of what it examines there has expired. Each step holds one
//! shard's lock for a bounded number of buckets, so clients of that shard
//! wait microseconds at most.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Server;

/// Buckets examined per shard lock.
const BUCKETS_PER_STEP: usize = 64;

/// Runs until the server shuts down.
pub fn run(server: Arc<Server>) {
    let mut shutdown = server.shutdown.subscribe();
    let mut next_db = 0;
    let mut sampled = Instant::now();
    loop {
        let hz = server.config.hz.load(Relaxed).max(1);
        let period = Duration::from_millis(1000 / hz);
        let budget = period / 4;
        let start = Instant::now();
        if server.active_expire.load(Relaxed) {
            let mut seen = Sampled::default();
            next_db = cycle(&server, start + budget, next_db, &mut seen);
            server.stats.note_expire_cycle(
                start.elapsed(),
                seen.keys,
                seen.expired,
                seen.cut_short,
            );
        }
        // The rest of Redis's serverCron that INFO depends on.
        if start.duration_since(sampled) >= crate::stats::SAMPLE_EVERY {
            sampled = start;
            server.stats.sample(start);
            server.stats.note_memory(crate::stats::used_memory());
            server.scripting.refresh_figures();
        }
        server.scaling.tick();
        if *shutdown.borrow_and_update() {
            return;
        }
        std::thread::sleep(period.saturating_sub(start.elapsed()));
    }
}

/// What one cycle examined: keys with a TTL, how many of them had
/// expired, and whether its time ran out first.
#[derive(Default)]
struct Sampled {
    keys: u64,
    expired: u64,
    cut_short: bool,
}

/// One cycle over the databases, resuming at `first_db`, until `deadline`.
/// Returns the database to start from next time.
fn cycle(server: &Server, deadline: Instant, first_db: usize, seen: &mut Sampled) -> usize {
    let dbs = server.keyspace.len();
    for n in 0..dbs {
        let db_index = (first_db + n) % dbs;
        let db = server.keyspace.db(db_index);
        let mut ttls = crate::store::keyspace::TtlSample::default();
        let mut volatile_left = false;
        for shard in 0..crate::store::SHARDS {
            loop {
                let now = crate::now_ms();
                let (checked, gone, ticket) = {
                    // Transactions and scripts see no key vanish halfway
                    // through; one that outlasts this cycle's time ends the
                    // cycle (and a busy script cannot hold up shutdown).
                    let wait = deadline.saturating_duration_since(Instant::now());
                    let idx = server.gates.len() - 1;
                    let Some(_gate) = server.gates.try_shared_for(idx, wait) else {
                        db.note_ttls(&ttls, true);
                        seen.keys += ttls.count as u64;
                        seen.cut_short = true;
                        return db_index;
                    };
                    let mut guard = db.shard(shard);
                    let (checked, gone) = guard.expire_step(BUCKETS_PER_STEP, now, &mut ttls);
                    volatile_left |= guard.volatile() > 0;
                    // Ordered while the shard is locked, as a command's
                    // writes are: a later write to the key comes after.
                    let ticket = (!gone.is_empty())
                        .then(|| server.persist.aof.ticket())
                        .flatten();
                    (checked, gone, ticket)
                };
                if let Some(t) = ticket {
                    // Propagated as DEL, as Redis's active expiry does.
                    let dels = gone
                        .iter()
                        .map(|e| (db_index, vec![b"DEL".to_vec(), e.key().to_vec()]))
                        .collect();
                    server.persist.aof.fill(t, dels);
                }
                let events = server.config.notify_flags.load(Relaxed);
                for e in &gone {
                    server.watches.touch(db_index, e.key());
                    server.pubsub.keyspace_event(
                        events,
                        server.config.pubsub_limits(),
                        crate::pubsub::events::EXPIRED,
                        db_index,
                        "expired",
                        e.key(),
                        None,
                    );
                }
                let removed = gone.len();
                seen.keys += removed as u64;
                seen.expired += removed as u64;
                if removed > 0 {
                    server.stats.expired_keys.add(removed as u64);
                    server.stats.dirty.add(removed as u64);
                }
                // Freed here, outside the shard lock.
                drop(gone);
                if Instant::now() >= deadline {
                    // Cut short: only what was sampled counts.
                    db.note_ttls(&ttls, true);
                    seen.keys += ttls.count as u64;
                    seen.cut_short = true;
                    return db_index;
                }
                if checked == 0 || removed * 10 < checked {
                    break;
                }
            }
        }
        db.note_ttls(&ttls, volatile_left);
        seen.keys += ttls.count as u64;
    }
    first_db
}
