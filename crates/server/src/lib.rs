//! ferrokv: a Redis-compatible in-memory data server.
//!
//! The crate is laid out by responsibility:
//! - [`config`]: the directive table, config file and CONFIG.
//! - [`net`]: listeners, connection tasks, shutdown.
//! - [`pass`]: what an event loop does before it sleeps: replies and AOF
//!   writes, once per pass.
//! - [`scale`]: how many event loops take connections.
//! - [`client`]: per-connection state and the registry CLIENT reads.
//! - [`command`]: the command table, dispatch, one module per family.
//! - [`store`]: the sharded keyspace, entries and their encodings, expiry.
//! - [`scripting`]: Lua scripts and functions (EVAL, FCALL).
//! - [`pubsub`]: subscriptions, message queues, keyspace notifications.
//! - [`persist`]: RDB snapshots, loading, DUMP/RESTORE payloads.
//! - [`glob`]: Redis's pattern matching.
//!
//! [`Server`] is the shared state every connection task holds; nothing is
//! global except the process-wide hash seed.

pub mod blocking;
pub mod client;
pub mod command;
pub mod config;
pub mod gate;
pub mod glob;
pub mod histogram;
pub mod latency;
pub mod logging;
pub mod net;
pub mod pass;
pub mod persist;
pub mod pubsub;
pub mod scale;
pub mod scripting;
pub mod slowlog;
pub mod stats;
pub mod store;
pub mod watch;

use std::sync::Arc;
use std::time::Instant;

pub use ferrokv_resp::split_args as split_words;

/// The version reported as `redis_version`: the Redis release whose
/// behaviour ferrokv reproduces, so that clients pick the right features.
pub const REDIS_VERSION: &str = "7.0.15";

/// State shared by every connection and background task.
pub struct Server {
    pub config: config::Config,
    pub keyspace: store::Keyspace,
    pub commands: command::CommandTable,
    pub stats: stats::Stats,
    pub clients: client::Registry,
    pub blocking: blocking::Blocking,
    pub watches: watch::Watches,
    pub pubsub: pubsub::PubSub,
    /// One gate per event loop, and one for the expiry thread (the last).
    pub gates: gate::Gates,
    pub slowlog: slowlog::SlowLog,
    pub latency: latency::Monitor,
    pub persist: persist::Persistence,
    /// DEBUG SET-ACTIVE-EXPIRE: whether the active expiry cycle runs.
    pub active_expire: std::sync::atomic::AtomicBool,
    pub started: Instant,
    /// Random, new at every start: tells a restarted server from the one
    /// before it (INFO run_id).
    pub run_id: String,
    /// The replication ID of this server's history (INFO master_replid),
    /// random at start as in Redis.
    pub replid: String,
    /// Told to every background task when the server stops; connections
    /// read `stopping` instead (see [`Server::stopping`]).
    pub shutdown: tokio::sync::watch::Sender<bool>,
    stopping: std::sync::atomic::AtomicBool,
    /// Ports actually bound (port 0 picks a free one).
    pub bound: parking_lot::Mutex<Vec<std::net::SocketAddr>>,
    /// Worker threads of the runtime, for INFO.
    pub threads: usize,
    /// Connections on each event loop, the overflow loop last (INFO
    /// loop_clients): shows where crate::net::Loops has moved them.
    pub loop_clients: Box<[std::sync::atomic::AtomicUsize]>,
    /// How many event loops take connections.
    pub scaling: scale::Scaling,
    /// The Lua VM, script cache, function libraries and the running script.
    pub scripting: scripting::Scripting,
}

impl Server {
    pub fn new(config: config::Config, threads: usize) -> Arc<Server> {
        let databases = config.get_i64("databases") as usize;
        let adaptive = config.get("adaptive-loops") == "yes";
        let (shutdown, _) = tokio::sync::watch::channel(false);
        Arc::new(Server {
            config,
            keyspace: store::Keyspace::new(databases),
            commands: command::CommandTable::new(),
            stats: stats::Stats::default(),
            clients: client::Registry::default(),
            blocking: blocking::Blocking::default(),
            watches: watch::Watches::default(),
            pubsub: pubsub::PubSub::default(),
            // The event loops, the overflow loop (crate::net::Loops), the expiry
            // thread.
            gates: gate::Gates::new(threads + 2),
            slowlog: slowlog::SlowLog::default(),
            latency: latency::Monitor::default(),
            persist: persist::Persistence::default(),
            active_expire: std::sync::atomic::AtomicBool::new(true),
            started: Instant::now(),
            run_id: random_hex_id(),
            replid: random_hex_id(),
            shutdown,
            stopping: std::sync::atomic::AtomicBool::new(false),
            bound: parking_lot::Mutex::new(Vec::new()),
            threads,
            loop_clients: (0..=threads).map(|_| Default::default()).collect(),
            scaling: scale::Scaling::new(threads, adaptive),
            scripting: scripting::Scripting::default(),
        })
    }

    /// Stops the server: background tasks hear it on `shutdown`, and
    /// every connection is woken to find [`Server::stopping`] set.
    pub fn request_shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shutdown.send_replace(true);
        for client in self.clients.all() {
            client.attention.wake();
        }
    }

    /// Whether the server is stopping. Connections check it whenever their
    /// task wakes: a connection registered after the wake-up above still
    /// sees the flag at its first poll.
    pub fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Reads `clock` as (seconds, nanoseconds), straight from clock_gettime:
/// `SystemTime::now().duration_since(UNIX_EPOCH)` goes through checked
/// `Duration` arithmetic that cost more than the clock read itself, and
/// every command reads the clock twice. None if the clock is unknown.
pub(crate) fn read_clock(clock: libc::clockid_t) -> Option<(i64, i64)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    let ok = unsafe { libc::clock_gettime(clock, &mut ts) } == 0;
    ok.then_some((ts.tv_sec, ts.tv_nsec))
}

/// The wall clock; the epoch if it cannot be read (CLOCK_REALTIME exists
/// on every Linux).
fn wall_clock() -> (i64, i64) {
    read_clock(libc::CLOCK_REALTIME).unwrap_or((0, 0))
}

/// Microseconds since the Unix epoch: one clock read gives both a
/// command's timestamp and the start of its duration, as Redis's ustime().
pub fn now_us() -> i64 {
    let (s, ns) = wall_clock();
    s * 1_000_000 + ns / 1_000
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    let (s, ns) = wall_clock();
    s * 1_000 + ns / 1_000_000
}

/// 40 random hex digits, like Redis's run and replication IDs.
fn random_hex_id() -> String {
    use std::fmt::Write;
    rand::random::<[u8; 20]>()
        .iter()
        .fold(String::with_capacity(40), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
