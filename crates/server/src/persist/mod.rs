//! Persistence: RDB snapshots in Redis's format (SAVE, BGSAVE, the `save`
//! policy, SHUTDOWN and signals), loading at start-up, and the shared state
//! INFO persistence and MISCONF read. The append-only file is in [`aof`].
//!
//! # Point-in-time snapshots without fork
//!
//! Redis forks and lets the kernel copy pages a writer touches. ferrokv
//! copies per keyspace shard instead:
//!
//! 1. BGSAVE starts under the exclusive gate (crate::gate), so no command
//!    is halfway through a change: every shard of every database is marked
//!    *pending* and the key counts are taken (RESIZEDB). That takes
//!    microseconds per shard; the gate is released at once.
//! 2. The saver thread visits the shards in (database, shard) order, a
//!    few hundred entries at a time: under the shard's lock it takes the
//!    records writers kept (below) and copies the next entries of its
//!    walk that no writer touched, then encodes the copies after the lock
//!    is released. Writers to that shard wait for one such copy at most.
//!    The walk is a SCAN cursor, so a key present all along is met even
//!    if the table grows in between, and a key's hash alone tells whether
//!    the walk has passed it (store::keyspace::Pending), which also drops
//!    SCAN's repeats after a table shrinks.
//! 3. Before a key of a pending shard that the walk has not passed yet is
//!    looked up or changed (lookups hand out entries that may be changed
//!    in place), the shard encodes that key's record as it is and marks
//!    the key touched, once per snapshot. A key that does not exist yet
//!    is only marked, so that the snapshot leaves it out if it is created.
//!    A write then costs the encoding of its own key, and nothing once the
//!    walk has passed it.
//! 4. What changes a whole shard at once (FLUSHALL, SWAPDB, loading) goes
//!    through `Db::shard_whole`, which first hands the pending shard to the
//!    saver whole ([`Capture`]).
//!
//! Each key is thus written exactly once, as it was when BGSAVE began, so
//! the file is a point-in-time image of the whole keyspace. The extra
//! memory is the kept records, the copies of the one shard being encoded,
//! whole shards handed over, and the marks of keys touched ahead of the
//! walk (about a key's bytes plus 32 each, dropped as each shard
//! finishes): the records are at most the serialized size of the data
//! set, and only when writers touch every key before the saver reaches
//! it. The peak of all but the copies is logged after each BGSAVE and is
//! INFO's `rdb_last_cow_size`. The saver runs at the lowest scheduling
//! priority ([`yield_to_clients`]).
//!
//! SAVE and SHUTDOWN's save run the same code in the calling thread while
//! holding the exclusive gate, as Redis's SAVE blocks every client.
//!
//! The function libraries are few and small: the snapshot copies their
//! code when it begins and writes it ahead of the databases.
//!
//! Files are written to `temp-<pid>.rdb`, fsynced, and renamed over
//! `dbfilename`, so a failed save never damages the previous dump.

pub mod aof;
pub mod crc64;
pub mod listpack;
pub mod lzf;
pub mod rdb;

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::store::{Entry, Freezer, Visit, SHARDS};
use crate::Server;

/// Entries the saver copies per visit of a shard: writers to that shard
/// wait for about this many copies (tens of microseconds).
const VISIT_ENTRIES: usize = 256;

/// Redis's CONFIG_BGSAVE_RETRY_DELAY: after a failed BGSAVE, the policy
/// waits this long before trying again.
const RETRY_DELAY_SECS: i64 = 5;

/// The reply MISCONF rejections carry, word for word Redis's.
pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Persistence state shared by the commands, INFO and the saver thread.
pub struct Persistence {
    state: Mutex<State>,
    changed: Condvar,
    /// Unix seconds of the last successful save (start-up counts as one).
    pub last_save: AtomicI64,
    pub last_bgsave_ok: AtomicBool,
    /// Duration of the last BGSAVE in seconds, -1 before the first.
    pub last_bgsave_secs: AtomicI64,
    /// Saves started (BGSAVE) or completed (SAVE), Redis's rdb_saves.
    pub saves: AtomicU64,
    /// `stats.dirty` as of the snapshot the last successful save wrote.
    pub dirty_at_save: AtomicU64,
    pub loaded_keys: AtomicU64,
    pub loaded_expired: AtomicU64,
    /// Peak bytes the last RDB snapshot held beside the data set: kept
    /// records, shards handed over whole, marks of touched keys.
    pub last_peak_frozen: AtomicU64,
    /// Keys whose records writers kept for the last snapshot, having got
    /// to them before the saver (INFO `rdb_last_kept_keys`, ferrokv's own).
    pub last_kept_keys: AtomicU64,
    /// The same peak for the last AOF rewrite (INFO `aof_last_cow_size`).
    pub last_rewrite_peak_frozen: AtomicU64,
    /// The snapshot begun and not yet written, for INFO's `current_*`
    /// figures (weak: an abandoned snapshot drops out by itself).
    current: Mutex<std::sync::Weak<Capture>>,
    pub aof: aof::Aof,
}

#[derive(Default)]
struct State {
    /// A BGSAVE whose shards are marked, waiting for the saver thread.
    job: Option<Job>,
    /// When the running BGSAVE started.
    running: Option<Instant>,
    /// BGSAVE SCHEDULE (or BGSAVE inside MULTI): start when possible.
    scheduled: bool,
    /// Unix seconds of the last BGSAVE attempt.
    last_try: i64,
    /// A BGREWRITEAOF whose shards are marked, for the saver thread.
    rewrite_job: Option<aof::RewriteJob>,
    /// When the running BGREWRITEAOF started.
    rewriting: Option<Instant>,
    /// BGREWRITEAOF asked while a BGSAVE ran (or inside EXEC).
    rewrite_scheduled: bool,
}

struct Job {
    snapshot: Snapshot,
}

/// A snapshot begun: the side buffers and what was counted and copied
/// at its start.
pub struct Snapshot {
    capture: Arc<Capture>,
    counts: Vec<(usize, usize)>,
    /// The function libraries' code: few and small, copied at once.
    functions: Vec<Vec<u8>>,
    dirty: u64,
    /// Written while every other command is held off (SAVE, shutdown):
    /// shards are encoded under their locks, as nobody waits for them.
    held_off: bool,
}

impl Snapshot {
    pub fn format(&self) -> Format {
        self.capture.format
    }
}

/// Progress of the snapshot being written: the bytes it holds beside the
/// data set now and at most (Redis's copy-on-write figures), and its keys
/// written so far and in all.
#[derive(Default)]
pub struct CurrentSave {
    pub held: usize,
    pub peak: usize,
    pub processed: usize,
    pub total: usize,
}

/// Once a snapshot is written (or failed), INFO no longer shows it as
/// current, even before its job is dropped and while the BGSAVE is still
/// marked running.
struct Written<'a>(&'a Persistence);

impl Drop for Written<'_> {
    fn drop(&mut self) {
        *self.0.current.lock() = std::sync::Weak::new();
    }
}

/// Why a save could not be started.
#[derive(Debug, PartialEq, Eq)]
pub enum StartError {
    InProgress,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            last_save: AtomicI64::new(crate::now_ms() / 1000),
            last_bgsave_ok: AtomicBool::new(true),
            last_bgsave_secs: AtomicI64::new(-1),
            saves: AtomicU64::new(0),
            dirty_at_save: AtomicU64::new(0),
            loaded_keys: AtomicU64::new(0),
            loaded_expired: AtomicU64::new(0),
            last_peak_frozen: AtomicU64::new(0),
            last_kept_keys: AtomicU64::new(0),
            last_rewrite_peak_frozen: AtomicU64::new(0),
            current: Mutex::new(std::sync::Weak::new()),
            aof: aof::Aof::default(),
        }
    }
}

/// What a snapshot's shards are serialized as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RDB records; `compress` is `rdbcompression`.
    /// `list_fill` is `list-max-listpack-size`, which splits lists into
    /// quicklist nodes.
    Rdb { compress: bool, list_fill: i32 },
    /// Commands that rebuild the keys: an AOF base written with
    /// `aof-use-rdb-preamble no`.
    Aof,
}

/// Serialized shards handed over by writers, until the saver takes them.
struct Capture {
    format: Format,
    frozen: Mutex<HashMap<(usize, usize), Vec<u8>>>,
    held: AtomicUsize,
    peak: AtomicUsize,
    /// Records writers kept for keys the saver had not reached.
    kept: AtomicUsize,
    /// Keys in the snapshot so far, and in all (INFO's
    /// `current_save_keys_processed` and `current_save_keys_total`).
    processed: AtomicUsize,
    total: AtomicUsize,
}

impl Capture {
    fn new(format: Format) -> Capture {
        Capture {
            format,
            frozen: Mutex::new(HashMap::new()),
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            kept: AtomicUsize::new(0),
            processed: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
        }
    }

    fn take(&self, db: usize, shard: usize) -> Vec<u8> {
        self.frozen.lock().remove(&(db, shard)).unwrap_or_default()
    }

    /// The saver has written `buf` out: it no longer counts as held.
    fn written(&self, buf: &[u8]) {
        self.held.fetch_sub(buf.len(), Relaxed);
    }

    fn hold(&self, bytes: usize) {
        let now = self.held.fetch_add(bytes, Relaxed) + bytes;
        self.peak.fetch_max(now, Relaxed);
    }

    /// Appends `e`'s record to `out` without counting it as held.
    fn encode_record(&self, e: &Entry, out: &mut Vec<u8>) {
        match self.format {
            Format::Rdb {
                compress,
                list_fill,
            } => {
                let mut enc = rdb::Encoder::new(compress);
                enc.list_fill = list_fill;
                enc.buf = std::mem::take(out);
                enc.entry(e);
                *out = enc.buf;
            }
            Format::Aof => aof::rebuild_entry(out, e),
        }
    }
}

impl Freezer for Capture {
    fn encode(&self, e: &Entry, out: &mut Vec<u8>) {
        let before = out.len();
        self.encode_record(e, out);
        self.hold(out.len() - before);
    }

    /// One update of the held bytes for the record and the mark together:
    /// this runs on the event loops, for every key first touched while a
    /// snapshot is pending.
    fn keep(&self, e: Option<&Entry>, mark: usize, out: &mut Vec<u8>) {
        let before = out.len();
        if let Some(e) = e {
            self.kept.fetch_add(1, Relaxed);
            self.processed.fetch_add(1, Relaxed);
            self.encode_record(e, out);
        }
        self.hold(out.len() - before + mark);
    }

    fn freeze(&self, db: usize, shard: usize, records: Vec<u8>, keys: usize) {
        self.processed.fetch_add(keys, Relaxed);
        self.frozen.lock().insert((db, shard), records);
    }

    fn marks_dropped(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Relaxed);
    }
}

impl Persistence {
    pub fn bgsave_in_progress(&self) -> bool {
        self.state.lock().running.is_some()
    }

    /// The snapshot being written, as INFO's `current_*` fields show it
    /// (zeros when none is).
    pub fn current_save(&self) -> CurrentSave {
        match self.current.lock().upgrade() {
            Some(c) => CurrentSave {
                held: c.held.load(Relaxed),
                peak: c.peak.load(Relaxed),
                processed: c.processed.load(Relaxed),
                total: c.total.load(Relaxed),
            },
            None => CurrentSave::default(),
        }
    }

    /// Seconds the running BGSAVE has taken so far, or -1.
    pub fn current_bgsave_secs(&self) -> i64 {
        self.state
            .lock()
            .running
            .map_or(-1, |t| t.elapsed().as_secs() as i64)
    }

    /// Changes since the last successful save.
    pub fn changes_since_save(&self, server: &Server) -> u64 {
        server
            .stats
            .dirty
            .get()
            .saturating_sub(self.dirty_at_save.load(Relaxed))
    }

    /// Asks for a BGSAVE as soon as none is running (BGSAVE SCHEDULE).
    pub fn schedule(&self) {
        self.state.lock().scheduled = true;
        self.changed.notify_all();
    }

    /// Whether write commands are refused with MISCONF: the last BGSAVE
    /// failed, save points are configured and stop-writes-on-bgsave-error
    /// is on (Redis's writeCommandsDeniedByDiskError).
    pub fn writes_denied(&self, server: &Server) -> bool {
        !self.last_bgsave_ok.load(Relaxed)
            && server.config.get("stop-writes-on-bgsave-error") == "yes"
            && !server.config.get("save").is_empty()
    }
}

/// Begins an RDB snapshot.
fn begin(server: &Server) -> Snapshot {
    begin_as(server, rdb_format(server))
}

fn rdb_format(server: &Server) -> Format {
    Format::Rdb {
        compress: server.config.get("rdbcompression") == "yes",
        list_fill: encodings(server).list_fill,
    }
}

/// Begins a snapshot serialized as `format`.
fn begin_as(server: &Server, format: Format) -> Snapshot {
    let capture = Arc::new(Capture::new(format));
    let counts = server.keyspace.begin_snapshot(capture.clone());
    let total = counts.iter().map(|&(keys, _)| keys).sum();
    capture.total.store(total, Relaxed);
    *server.persist.current.lock() = Arc::downgrade(&capture);
    Snapshot {
        capture,
        counts,
        functions: server.scripting.library_codes(),
        dirty: server.stats.dirty.get(),
        held_off: false,
    }
}

/// Lowers the calling thread's scheduling priority to nice 19, so that a
/// snapshot runs on the CPU the event loops and their clients leave idle,
/// as Redis's forked child uses a core of its own. Measured with BGSAVEs
/// back to back under SET at `-c 50 -P 1` on two cores: 35k requests/s
/// at nice 0, 56k at nice 10, 65k at 19 (90k to 100k without a BGSAVE).
/// On a saturated machine it still gets a share (about 1.5% next to one
/// busy loop), so it always finishes, only later; SHUTDOWN, which waits
/// for it, holds every loop off, which leaves it all the CPU. Only on
/// Linux does this touch just one thread.
fn yield_to_clients() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on this thread's own id.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 19);
        }
    }
}

/// Starts a BGSAVE: marks the shards and hands the job to the saver
/// thread. The caller holds the exclusive gate.
pub fn start_bgsave(server: &Server) -> Result<(), StartError> {
    let p = &server.persist;
    let mut st = p.state.lock();
    // One snapshot at a time: the shards carry one set of marks.
    if st.running.is_some() || st.rewriting.is_some() {
        return Err(StartError::InProgress);
    }
    st.running = Some(Instant::now());
    st.scheduled = false;
    st.last_try = crate::now_ms() / 1000;
    st.job = Some(Job {
        snapshot: begin(server),
    });
    p.saves.fetch_add(1, Relaxed);
    drop(st);
    tracing::info!("Background saving started");
    p.changed.notify_all();
    Ok(())
}

/// SAVE: writes a snapshot in the calling thread. The caller holds the
/// exclusive gate; fails if a BGSAVE is running.
pub fn save(server: &Server) -> Result<(), SaveError> {
    if server.persist.bgsave_in_progress() {
        return Err(SaveError::InProgress);
    }
    save_now(server)
}

/// The save SHUTDOWN and the signals make: waits for a running BGSAVE to
/// finish, then saves. The caller holds the exclusive gate.
pub fn save_for_shutdown(server: &Server) -> Result<(), SaveError> {
    let p = &server.persist;
    let mut st = p.state.lock();
    while st.running.is_some() {
        p.changed.wait(&mut st);
    }
    drop(st);
    tracing::warn!("Saving the final RDB snapshot before exiting.");
    save_now(server)
}

/// Why SAVE failed.
#[derive(Debug)]
pub enum SaveError {
    InProgress,
    Io(std::io::Error),
}

fn save_now(server: &Server) -> Result<(), SaveError> {
    let snapshot = Snapshot {
        held_off: true,
        ..begin(server)
    };
    let result = write_snapshot(server, &snapshot);
    server.keyspace.end_snapshot();
    let p = &server.persist;
    match result {
        Ok(()) => {
            tracing::info!("DB saved on disk");
            p.saves.fetch_add(1, Relaxed);
            p.saved(snapshot.dirty);
            Ok(())
        }
        Err(e) => Err(SaveError::Io(e)),
    }
}

impl Persistence {
    fn saved(&self, dirty: u64) {
        self.last_save.store(crate::now_ms() / 1000, Relaxed);
        self.dirty_at_save.store(dirty, Relaxed);
        self.last_bgsave_ok.store(true, Relaxed);
    }
}

/// Writes `snapshot` to `dbfilename` in the current directory (`dir`)
/// through a temporary file, fsynced and renamed into place.
fn write_snapshot(server: &Server, snapshot: &Snapshot) -> std::io::Result<()> {
    let target = server.config.get("dbfilename");
    write_snapshot_to(server, snapshot, std::path::Path::new(&target), false)
}

/// Writes `snapshot` to `target` through a temporary file; `aof_base`
/// marks an AOF base file (the `aof-base` aux field).
fn write_snapshot_to(
    server: &Server,
    snapshot: &Snapshot,
    target: &std::path::Path,
    aof_base: bool,
) -> std::io::Result<()> {
    let tmp = format!("temp-{}.rdb", std::process::id());
    let result = write_file(server, snapshot, &tmp, target, aof_base);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_file(
    server: &Server,
    snapshot: &Snapshot,
    tmp: &str,
    target: &std::path::Path,
    aof_base: bool,
) -> std::io::Result<()> {
    let capture = &snapshot.capture;
    let _written = Written(&server.persist);
    let rdb = match capture.format {
        Format::Rdb { compress, .. } => Some(compress),
        Format::Aof => None,
    };
    let checksum = rdb.is_some() && server.config.get("rdbchecksum") == "yes";
    let file = std::fs::File::create(tmp).map_err(|e| {
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|_| "unknown".into());
        tracing::warn!(
            "Failed opening the temp RDB file {tmp} (in server root dir {cwd}) for saving: {e}"
        );
        e
    })?;
    let mut out = Output {
        file: std::io::BufWriter::with_capacity(1 << 16, file),
        crc: 0,
        checksum,
    };
    if let Some(compress) = rdb {
        let mut enc = rdb::Encoder::new(compress);
        enc.buf.extend_from_slice(b"REDIS0010");
        let now_ms = crate::now_ms();
        enc.aux("redis-ver", crate::REDIS_VERSION.as_bytes());
        enc.aux("redis-bits", b"64");
        enc.aux("ctime", (now_ms / 1000).to_string().as_bytes());
        enc.aux(
            "used-mem",
            crate::stats::used_memory().to_string().as_bytes(),
        );
        enc.aux("aof-base", if aof_base { b"1" } else { b"0" });
        // Libraries come before the databases, as Redis 7.0 writes them.
        for code in &snapshot.functions {
            enc.function(code);
        }
        out.write(&enc.buf)?;
    } else {
        // Redis's AOF rewrite loads the libraries first, the same way.
        let mut buf = Vec::new();
        for code in &snapshot.functions {
            aof::encode(&mut buf, &[&b"FUNCTION"[..], b"LOAD", code]);
        }
        out.write(&buf)?;
    }
    let delay = server.config.get_i64("rdb-key-save-delay");
    for (db, &(keys, expires)) in snapshot.counts.iter().enumerate() {
        if keys > 0 {
            match rdb {
                Some(compress) => {
                    let mut enc = rdb::Encoder::new(compress);
                    enc.byte(rdb::OP_SELECTDB);
                    enc.length(db as u64);
                    enc.byte(rdb::OP_RESIZEDB);
                    enc.length(keys as u64);
                    enc.length(expires as u64);
                    out.write(&enc.buf)?;
                }
                None => {
                    let mut buf = Vec::new();
                    aof::encode(&mut buf, &[b"SELECT", db.to_string().as_bytes()]);
                    out.write(&buf)?;
                }
            }
        }
        let owed = key_save_delay(delay, keys);
        let budget = (!snapshot.held_off).then_some(VISIT_ENTRIES);
        for shard in 0..SHARDS {
            loop {
                let (buf, done) = match server.keyspace.snapshot_visit(db, shard, budget) {
                    Visit::Part {
                        mut records,
                        copies,
                        done,
                    } => {
                        // Growing from empty copied the buffer over and over.
                        records.reserve(copies.len() * 32);
                        for e in &copies {
                            capture.encode(e, &mut records);
                        }
                        capture.processed.fetch_add(copies.len(), Relaxed);
                        (records, done)
                    }
                    Visit::Gone => (capture.take(db, shard), true),
                };
                out.write(&buf)?;
                capture.written(&buf);
                if done {
                    break;
                }
            }
            // Outside the shard's lock, so only the saver waits.
            let due = |n: usize| owed * n as u32 / SHARDS as u32;
            std::thread::sleep(due(shard + 1) - due(shard));
        }
    }
    if rdb.is_some() {
        out.write(&[rdb::OP_EOF])?;
        let crc = if checksum { out.crc } else { 0 };
        out.file.write_all(&crc.to_le_bytes())?;
    }
    let file = out.file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, target)?;
    // The rename itself must survive a crash.
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    let peak = if aof_base {
        &server.persist.last_rewrite_peak_frozen
    } else {
        &server.persist.last_peak_frozen
    };
    peak.store(capture.peak.load(Relaxed) as u64, Relaxed);
    server
        .persist
        .last_kept_keys
        .store(capture.kept.load(Relaxed) as u64, Relaxed);
    Ok(())
}

/// The sleep `rdb-key-save-delay` asks for while saving `keys` keys: the
/// directive's microseconds per key (Redis's debugDelay; a negative value
/// -n sleeps one microsecond every n keys). Redis's own tests use it to
/// make a save last long enough to act during it.
fn key_save_delay(delay: i64, keys: usize) -> Duration {
    let keys = keys as u64;
    let micros = match delay {
        d if d > 0 => keys.saturating_mul(d as u64),
        d if d < 0 => keys / d.unsigned_abs(),
        _ => 0,
    };
    Duration::from_micros(micros)
}

/// The file being written, with the running checksum.
struct Output {
    file: std::io::BufWriter<std::fs::File>,
    crc: u64,
    checksum: bool,
}

impl Output {
    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        if self.checksum {
            self.crc = crc64::update(self.crc, b);
        }
        self.file.write_all(b)
    }
}

/// The saver thread: runs BGSAVEs handed over by [`start_bgsave`] and
/// starts them itself when the `save` policy or BGSAVE SCHEDULE asks.
/// Returns when the server shuts down (after finishing a running save).
pub fn run(server: Arc<Server>) {
    yield_to_clients();
    let shutdown = server.shutdown.subscribe();
    let p = &server.persist;
    loop {
        let (job, rewrite) = {
            let mut st = p.state.lock();
            if st.job.is_none() && st.rewrite_job.is_none() {
                p.changed.wait_for(&mut st, Duration::from_millis(100));
            }
            (st.job.take(), st.rewrite_job.take())
        };
        if let Some(rewrite) = rewrite {
            aof::finish_rewrite(&server, rewrite);
            continue;
        }
        if let Some(job) = job {
            finish_bgsave(&server, job);
            continue;
        }
        if aof::enable_due(&server) {
            let _all = server.gates.exclusive();
            aof::enable(&server);
        }
        if aof::rewrite_due(&server) {
            let _all = server.gates.exclusive();
            let _ = aof::start_rewrite(&server);
        }
        if *shutdown.borrow() {
            p.aof.flush_all();
            return;
        }
        if due(&server) {
            let _all = server.gates.exclusive();
            let _ = start_bgsave(&server);
        }
    }
}

/// Whether a save point is reached (Redis's serverCron check) or a
/// scheduled BGSAVE may start.
fn due(server: &Server) -> bool {
    let p = &server.persist;
    let st = p.state.lock();
    if st.running.is_some() || st.rewriting.is_some() {
        return false;
    }
    let now = crate::now_ms() / 1000;
    let may_retry = p.last_bgsave_ok.load(Relaxed) || now - st.last_try > RETRY_DELAY_SECS;
    if st.scheduled && may_retry {
        return true;
    }
    let changes = p.changes_since_save(server);
    let since = now - p.last_save.load(Relaxed);
    let policy = server.config.get("save");
    let points: Vec<i64> = policy
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    points
        .chunks_exact(2)
        .any(|pt| changes >= pt[1].max(0) as u64 && since > pt[0] && may_retry)
        && {
            tracing::info!("{changes} changes in {since} seconds. Saving...");
            true
        }
}

fn finish_bgsave(server: &Server, job: Job) {
    let p = &server.persist;
    let started = Instant::now();
    let result = write_snapshot(server, &job.snapshot);
    server.keyspace.end_snapshot();
    match result {
        Ok(()) => {
            p.saved(job.snapshot.dirty);
            tracing::info!(
                "Background saving terminated with success ({} bytes held for the snapshot at peak)",
                job.snapshot.capture.peak.load(Relaxed)
            );
        }
        Err(e) => {
            p.last_bgsave_ok.store(false, Relaxed);
            tracing::warn!("Background saving error: {e}");
        }
    }
    p.last_bgsave_secs
        .store(started.elapsed().as_secs() as i64, Relaxed);
    p.state.lock().running = None;
    p.changed.notify_all();
}

/// The encoding thresholds loaded collections are built with: the
/// server's current `*-max-*` directives.
pub fn encodings(server: &Server) -> rdb::Encodings {
    let c = &server.config;
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    rdb::Encodings {
        zset: crate::store::zset::Limits {
            max_entries: size(c.zset_max_listpack_entries.load(Relaxed)),
            max_value: size(c.zset_max_listpack_value.load(Relaxed)),
        },
        hash: crate::store::hash::Limits {
            entries: size(c.hash_max_listpack_entries.load(Relaxed)),
            value: size(c.hash_max_listpack_value.load(Relaxed)),
        },
        set_max_intset: size(c.set_max_intset_entries.load(Relaxed)),
        list_fill: c
            .list_max_listpack_size
            .load(Relaxed)
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32,
    }
}

/// Loads `dbfilename` from the current directory (`dir`) into the empty
/// keyspace at start-up. A missing file is an empty data set; anything
/// unreadable or malformed is an error, and the server must not start.
pub fn load(server: &Server) -> Result<(), String> {
    let name = server.config.get("dbfilename");
    let data = match std::fs::read(&name) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "Fatal error loading the DB ({name}): {e}. Exiting."
            ))
        }
    };
    load_rdb(server, &data, &name)
}

/// Loads an RDB image (a dump or an AOF base) into the keyspace.
pub fn load_rdb(server: &Server, data: &[u8], name: &str) -> Result<(), String> {
    let start = Instant::now();
    let now = crate::now_ms();
    let clock = crate::store::lru_clock(now);
    let (mut loaded, mut expired) = (0u64, 0u64);
    let mut pending: Option<(usize, (usize, u64), crate::store::Entry)> = None;
    let mut insert = |(db, hash, entry): (usize, (usize, u64), crate::store::Entry)| match server
        .keyspace
        .db(db)
        .insert_loaded(hash, entry)
    {
        Ok(()) => {
            loaded += 1;
            Ok(())
        }
        Err(e) => Err(format!(
            "no duplicate keys, found '{}' twice in DB {db}",
            String::from_utf8_lossy(e.key()),
        )),
    };
    let result = rdb::read_file_sized(
        data,
        server.keyspace.len(),
        server.config.get("rdbchecksum") == "yes",
        encodings(server),
        |db, keys| {
            // Only an empty database is sized: an AOF base loads into one,
            // and a key count is a hint, capped so a corrupt one cannot
            // claim more than the file could hold.
            let keys = usize::try_from(keys).unwrap_or(usize::MAX);
            server.keyspace.db(db).reserve(keys.min(data.len() / 3));
        },
        |item| {
            let r = match item {
                rdb::Item::Key(r) => r,
                rdb::Item::Function(code) => {
                    return server
                        .scripting
                        .with_engine(|e| e.load_library(&code, false))
                        .map(drop)
                        .map_err(|e| format!("a library that loads ({})", e.text()));
                }
            };
            // Keys already expired are not loaded, as a Redis master does.
            if r.expiry.is_some_and(|at| at < now) {
                expired += 1;
                return Ok(());
            }
            // Nobody else touches the keyspace while it loads: no locks
            // across keys, one hash and one lookup per key. Each key goes in
            // one record late, its bucket fetched from memory meanwhile.
            let hash = crate::store::key_hash(&r.key);
            server.keyspace.db(r.db).prefetch(hash);
            let entry = crate::store::Entry::new(&r.key, r.value, r.expiry, clock);
            match pending.replace((r.db, hash, entry)) {
                Some(p) => insert(p),
                None => Ok(()),
            }
        },
    )
    .and_then(|()| match pending.take() {
        Some(p) => insert(p).map_err(|what| rdb::LoadError {
            offset: data.len(),
            what,
        }),
        None => Ok(()),
    });
    if let Err(e) = result {
        // Nothing half-loaded may be served: the caller exits.
        return Err(format!(
            "Bad RDB file {name}: expected {} at offset {}. Unrecoverable error, aborting now.",
            e.what, e.offset
        ));
    }
    let p = &server.persist;
    p.loaded_keys.store(loaded, Relaxed);
    p.loaded_expired.store(expired, Relaxed);
    tracing::info!(
        "DB loaded from disk: {:.3} seconds. Done loading RDB, keys loaded: {loaded}, keys expired: {expired}.",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
