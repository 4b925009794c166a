//! The append-only file, Redis 7.0's multi-part layout: propagation of
//! write commands, the AOF files and their manifest, fsync policies and
//! loading at start-up.
//!
//! # Propagation: one hook for AOF (and later replication)
//!
//! Every command that changed the data set is propagated from exactly one
//! place, `command::run`, after its handler: a command changed the data
//! set when it called the write hook (`Ctx::modified*`), as Redis decides
//! by its `dirty` counter delta. [`rewrite`] turns the command into
//! deterministic commands (relative expiries become absolute PEXPIREAT /
//! SET PXAT / RESTORE ABSTTL, INCRBYFLOAT and HINCRBYFLOAT become SET /
//! HSET of the result, SPOP becomes SREM of what was popped) and
//! [`Aof::fill`] appends them. Blocking pops served later are logged as
//! they were sent (BLPOP ...): replay never blocks and finds the same
//! data, so it pops the same elements.
//! Commands run inside EXEC or a script are collected on the client and
//! propagated by the outer EXEC/EVAL/FCALL as one MULTI ... EXEC group
//! (scripts by their effects, Redis 7's default). A SELECT is written
//! whenever the database differs from the previous record's. A future
//! replication stream consumes the same records at the same point.
//!
//! ## Order across event loops
//!
//! Several event loops run commands at once, so records must be written in
//! the order their effects happened, not the order handlers returned. The
//! first write hook call of a command (made while it holds its keys'
//! shard locks) takes a *ticket* from a global counter; two commands
//! touching the same key therefore get tickets in the order of their
//! effects. [`Aof::fill`] parks records until every smaller ticket is
//! filled and appends them to the buffer in ticket order. EXEC and scripts
//! run under the exclusive gate, so their group takes its ticket at the
//! end. Keys found expired are propagated as DEL, as Redis does: those a
//! command's lookups deleted go before the command's own records (wrapped
//! with them in MULTI ... EXEC), those the active expiry cycle reclaims
//! go alone; either way the ticket is taken while the key's shard is
//! locked, so a later write to the key is ordered after its deletion.
//!
//! # Durability
//!
//! Before a connection writes its replies it calls [`before_reply`] with
//! the highest ticket its commands took: the buffer up to that ticket is
//! written to the incr file, and with `appendfsync always` fsynced, so no
//! write is acknowledged before its record is on disk. Connections of all
//! event loops share the writes and fsyncs (group commit): whoever takes
//! the file lock writes and syncs everything buffered so far, and the
//! others find their ticket already covered; a loop waits for its own
//! fsync, as Redis's does, after its other ready connections have
//! buffered theirs. `everysec` fsyncs from the sync thread once a second,
//! `no` leaves it to the OS.
//!
//! # Files
//!
//! `<dir>/<appenddirname>/` holds `<appendfilename>.<n>.base.rdb` (an RDB
//! snapshot, `aof-use-rdb-preamble yes`) or `<appendfilename>.<n>.base.aof`
//! (commands that rebuild the data set, [`rebuild_entry`]), `<appendfilename>.<m>.incr.aof`
//! (commands in RESP) and `<appendfilename>.manifest`, in Redis 7.0's
//! formats, so redis-server 7.0 loads ferrokv's directory and vice versa.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::client::Client;
use crate::command::args;
use crate::Server;

/// One propagated command: its database and arguments.
pub type Propagated = (usize, Vec<Vec<u8>>);

/// The AOF state: tickets, the reorder buffer and the open incr file.
#[derive(Default)]
pub struct Aof {
    enabled: AtomicBool,
    next_ticket: AtomicU64,
    pending: Mutex<Pending>,
    filled: Condvar,
    file: Mutex<Option<Incr>>,
    pub last_write_ok: AtomicBool,
    pub current_size: AtomicU64,
    pub base_size: AtomicU64,
    last_fsync: Mutex<Option<Instant>>,
    /// The files the manifest lists.
    layout: Mutex<Layout>,
    /// Completed BGREWRITEAOFs.
    pub rewrites: AtomicU64,
    pub last_rewrite_failed: AtomicBool,
    pub last_rewrite_secs: AtomicU64,
    /// CONFIG SET appendonly yes, waiting for the saver thread.
    enable_requested: AtomicBool,
    /// Tickets below this are on disk.
    synced_upto: AtomicU64,
    /// Tickets below this are written to the incr file (not necessarily
    /// synced).
    written_upto: AtomicU64,
}

/// The base and incr files of the current manifest.
#[derive(Default)]
struct Layout {
    base: Option<ManifestFile>,
    incrs: Vec<ManifestFile>,
}

impl Layout {
    fn files(&self) -> Vec<ManifestFile> {
        self.base.iter().chain(&self.incrs).cloned().collect()
    }
}

#[derive(Default)]
struct Pending {
    /// Records whose ticket is ahead of `upto`.
    parked: BTreeMap<u64, Vec<Propagated>>,
    /// Every ticket below this is in `buf` (or written).
    upto: u64,
    buf: Vec<u8>,
    /// The database the last buffered record selected.
    db: Option<usize>,
}

/// The incr file being appended to.
struct Incr {
    file: File,
    /// Tickets below this are written to the file.
    written: u64,
    /// Tickets below this are fsynced.
    synced: u64,
}

impl Aof {
    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// A ticket for a command about to change the data set, or None when
    /// the AOF is off.
    pub fn ticket(&self) -> Option<u64> {
        self.enabled()
            .then(|| self.next_ticket.fetch_add(1, Relaxed))
    }

    /// Appends the records of `ticket` (possibly none) once every earlier
    /// ticket is in.
    pub fn fill(&self, ticket: u64, records: Vec<Propagated>) {
        let mut p = self.pending.lock();
        p.parked.insert(ticket, records);
        loop {
            let next = p.upto;
            let Some(records) = p.parked.remove(&next) else {
                break;
            };
            for (db, argv) in records {
                if p.db != Some(db) {
                    let sel = db.to_string();
                    encode(&mut p.buf, &[b"SELECT", sel.as_bytes()]);
                    p.db = Some(db);
                }
                encode(&mut p.buf, &argv);
            }
            p.upto += 1;
        }
        drop(p);
        self.filled.notify_all();
    }

    /// Writes the buffer up to at least `ticket` (exclusive) to the file,
    /// and fsyncs it when `sync`.
    fn flush(&self, ticket: u64, sync: bool) {
        self.flush_as(ticket, sync, false)
    }

    /// [`flush`](Self::flush); `always` when the policy is `always`.
    fn flush_as(&self, ticket: u64, sync: bool, always: bool) {
        let mut f = self.file.lock();
        let Some(incr) = f.as_mut() else {
            return;
        };
        if (if sync { incr.synced } else { incr.written }) >= ticket {
            return;
        }
        if incr.written < ticket {
            let (buf, upto) = {
                let mut p = self.pending.lock();
                while p.upto < ticket {
                    self.filled.wait(&mut p);
                }
                (std::mem::take(&mut p.buf), p.upto)
            };
            let ok = incr.file.write_all(&buf).is_ok();
            self.last_write_ok.store(ok, Relaxed);
            if !ok {
                tracing::warn!("Error writing to the AOF file");
                return;
            }
            self.current_size.fetch_add(buf.len() as u64, Relaxed);
            incr.written = upto;
            self.written_upto.fetch_max(upto, Relaxed);
        }
        if sync {
            let ok = incr.file.sync_data().is_ok();
            self.last_write_ok.store(ok, Relaxed);
            if ok {
                incr.synced = incr.written;
                *self.last_fsync.lock() = Some(Instant::now());
                self.synced_upto.fetch_max(incr.synced, Relaxed);
            } else if always {
                // As Redis: a reply may never claim a write is on disk.
                tracing::warn!("Can't recover from AOF fsync error when the AOF fsync policy is 'always'. Exiting...");
                std::process::exit(1);
            }
        }
    }

    /// At shutdown: everything buffered reaches the disk.
    pub fn flush_all(&self) {
        if self.enabled() {
            self.flush(self.issued(), true);
        }
    }

    /// Every ticket handed out so far.
    fn issued(&self) -> u64 {
        self.next_ticket.load(Relaxed)
    }
}

/// Appends `argv` in RESP to `out`.
pub(crate) fn encode<A: AsRef<[u8]>>(out: &mut Vec<u8>, argv: &[A]) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "*{}\r\n", argv.len());
    for a in argv {
        let a = a.as_ref();
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Items per command when a collection is rebuilt in an AOF base (Redis's
/// AOF_REWRITE_ITEMS_PER_CMD).
const ITEMS_PER_CMD: usize = 64;

/// Appends the commands that rebuild `e` to an AOF base written without
/// the RDB preamble, as Redis's rewriteAppendOnlyFileRio: SET for strings,
/// RPUSH / SADD / ZADD / HMSET in batches of [`ITEMS_PER_CMD`] items for
/// collections, then PEXPIREAT for a TTL.
pub fn rebuild_entry(out: &mut Vec<u8>, e: &crate::store::Entry) {
    use crate::store::{Object, ValueRef};
    let key = e.key();
    // Collections: the command name and the arguments of each item.
    let (name, items): (&[u8], Vec<Vec<Vec<u8>>>) = match e.value() {
        ValueRef::Int(n) => {
            let n = itoa::Buffer::new().format(n).as_bytes().to_vec();
            encode(out, &[b"SET", key, &n]);
            (b"", Vec::new())
        }
        ValueRef::Emb(s) => {
            encode(out, &[b"SET", key, s]);
            (b"", Vec::new())
        }
        ValueRef::Obj(Object::Raw(s)) => {
            encode(out, &[b"SET", key, s]);
            (b"", Vec::new())
        }
        ValueRef::Obj(Object::List(l)) => (b"RPUSH", l.iter().map(|i| vec![i.to_vec()]).collect()),
        ValueRef::Obj(Object::Set(s)) => (
            b"SADD",
            s.iter()
                .map(|m| match m {
                    crate::store::set::Member::Int(n) => {
                        vec![itoa::Buffer::new().format(n).as_bytes().to_vec()]
                    }
                    crate::store::set::Member::Bytes(b) => vec![b.to_vec()],
                })
                .collect(),
        ),
        ValueRef::Obj(Object::ZSet(z)) => {
            let mut items = Vec::with_capacity(z.len());
            z.for_range(0, z.len(), false, |m, score| {
                items.push(vec![
                    ferrokv_resp::format_double(score).into_bytes(),
                    m.to_vec(),
                ])
            });
            (b"ZADD", items)
        }
        ValueRef::Obj(Object::Hash(h)) => {
            let mut items = Vec::with_capacity(h.len());
            h.for_each(|f, v| items.push(vec![f.to_vec(), v.to_vec()]));
            (b"HMSET", items)
        }
    };
    for batch in items.chunks(ITEMS_PER_CMD) {
        let mut argv: Vec<&[u8]> = vec![name, key];
        argv.extend(batch.iter().flatten().map(Vec::as_slice));
        encode(out, &argv);
    }
    if let Some(at) = e.expiry() {
        let at = itoa::Buffer::new().format(at).as_bytes().to_vec();
        encode(out, &[b"PEXPIREAT", key, &at]);
    }
}

/// Called before a connection sends replies: the records of its commands
/// (tickets below `client.aof_ticket`) reach the file, and the disk with
/// `appendfsync always`, by one write and fsync per event-loop pass that
/// covers every connection of the pass (group commit).
pub async fn before_reply(server: &Server, client: &Client) {
    wait_for(server, client.aof_ticket).await;
}

/// Called before a served blocked client's reply: its command ran on a
/// writer's behalf, so everything issued so far must be in.
pub async fn before_served_reply(server: &Server) {
    wait_for(server, server.persist.aof.issued()).await;
}

async fn wait_for(server: &Server, ticket: u64) {
    let aof = &server.persist.aof;
    if ticket == 0 || !aof.enabled() {
        return;
    }
    let done = if server.config.fsync_always.load(Relaxed) {
        &aof.synced_upto
    } else {
        &aof.written_upto
    };
    if done.load(Relaxed) >= ticket {
        return;
    }
    // As Redis, the loop itself writes (and with `always` fsyncs) once per
    // pass: the loop's other ready connections run first and buffer their
    // records, the first back writes them all, the others find theirs
    // done. Handing the fsync to another thread instead let it start on a
    // few records while the rest of the pass was still arriving, and cost
    // a cross-thread wake-up per waiting connection.
    tokio::task::yield_now().await;
    settle(server, ticket);
}

/// Writes the records of tickets below `ticket` to the file, and with
/// `appendfsync always` to the disk, unless they are there already; with
/// `always`, whatever else is buffered goes along. The end of an
/// event-loop pass (crate::pass) calls it for the replies of the pass.
pub fn settle(server: &Server, ticket: u64) {
    let aof = &server.persist.aof;
    if ticket == 0 || !aof.enabled() {
        return;
    }
    if !server.config.fsync_always.load(Relaxed) {
        if aof.written_upto.load(Relaxed) < ticket {
            aof.flush(ticket, false);
        }
        return;
    }
    if aof.synced_upto.load(Relaxed) < ticket {
        let upto = aof.pending.lock().upto.max(ticket);
        aof.flush_as(upto, true, true);
    }
}

/// [`before_reply`] for the script thread, which sends the reply of a
/// script through the caller's connection: it writes and syncs itself.
pub fn before_reply_blocking(server: &Server, client: &Client) {
    let aof = &server.persist.aof;
    if client.aof_ticket == 0 || !aof.enabled() {
        return;
    }
    let always = server.config.fsync_always.load(Relaxed);
    aof.flush_as(client.aof_ticket, always, always);
}

/// The sync thread: the periodic duty ([`cron`]: `everysec`'s fsync),
/// here rather than in the persistence thread so that a long BGSAVE or
/// rewrite there does not hold it up. Returns when the server shuts down.
pub fn sync_thread(server: std::sync::Arc<Server>) {
    let shutdown = server.shutdown.subscribe();
    while !*shutdown.borrow() {
        std::thread::sleep(std::time::Duration::from_millis(100));
        cron(&server);
    }
}

/// The periodic duty of the sync thread: `everysec` fsyncs once a
/// second, the other policies write what is buffered.
pub fn cron(server: &Server) {
    let aof = &server.persist.aof;
    if !aof.enabled() {
        return;
    }
    let everysec = server.config.get("appendfsync") == "everysec";
    let due = aof
        .last_fsync
        .lock()
        .is_none_or(|t| t.elapsed().as_millis() >= 1000);
    let upto = aof.pending.lock().upto;
    aof.flush(upto, everysec && due);
}

/// The deterministic form of a command that changed the data set, as
/// propagated (Redis's rewrites before propagate/alsoPropagate). `name`
/// is the full name (`function|restore` is not `restore`); `reply` is what
/// the command replied, for the commands whose effect depends on it.
pub fn rewrite(name: &str, argv: &[&[u8]], now_ms: i64, reply: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let own = |v: &[&[u8]]| v.iter().map(|a| a.to_vec()).collect::<Vec<_>>();
    let int = |a: &[u8]| args::parse_i64_exact(a);
    let abs = |unit: i64, rel: bool, n: i64| -> Option<Vec<u8>> {
        let ms = n.checked_mul(unit)?;
        let at = if rel { now_ms.checked_add(ms)? } else { ms };
        Some(at.to_string().into_bytes())
    };
    let pexpireat = |key: &[u8], at: Vec<u8>| vec![b"PEXPIREAT".to_vec(), key.to_vec(), at];
    let rewritten = match name {
        "expire" | "pexpire" | "expireat" => {
            let (unit, rel) = match name {
                "expire" => (1000, true),
                "pexpire" => (1, true),
                _ => (1000, false),
            };
            int(argv[2])
                .and_then(|n| abs(unit, rel, n))
                .map(|at| vec![pexpireat(argv[1], at)])
        }
        "setex" | "psetex" => {
            let unit = if name == "setex" { 1000 } else { 1 };
            int(argv[2]).and_then(|n| abs(unit, true, n)).map(|at| {
                vec![vec![
                    b"SET".to_vec(),
                    argv[1].to_vec(),
                    argv[3].to_vec(),
                    b"PXAT".to_vec(),
                    at,
                ]]
            })
        }
        "set" => {
            let mut out = own(&argv[..3]);
            let mut i = 3;
            let mut ok = true;
            while i < argv.len() {
                let opt = argv[i];
                let unit = [("ex", 1000, true), ("px", 1, true), ("exat", 1000, false)]
                    .into_iter()
                    .find(|(o, _, _)| args::is(opt, o));
                match (unit, argv.get(i + 1)) {
                    (Some((_, unit, rel)), Some(n)) => {
                        match int(n).and_then(|n| abs(unit, rel, n)) {
                            Some(at) => out.extend([b"PXAT".to_vec(), at]),
                            None => ok = false,
                        }
                        i += 2;
                    }
                    _ => {
                        out.push(opt.to_vec());
                        i += 1;
                    }
                }
            }
            ok.then(|| vec![out])
        }
        "getex" => {
            let opt = argv.get(2).copied().unwrap_or_default();
            if args::is(opt, "persist") {
                Some(vec![vec![b"PERSIST".to_vec(), argv[1].to_vec()]])
            } else {
                let unit = [
                    ("ex", 1000, true),
                    ("px", 1, true),
                    ("exat", 1000, false),
                    ("pxat", 1, false),
                ]
                .into_iter()
                .find(|(o, _, _)| args::is(opt, o));
                unit.zip(argv.get(3))
                    .and_then(|((_, unit, rel), n)| int(n).and_then(|n| abs(unit, rel, n)))
                    .map(|at| vec![pexpireat(argv[1], at)])
            }
        }
        "restore" => {
            let absolute = argv[4..].iter().any(|a| args::is(a, "absttl"));
            match int(argv[2]) {
                Some(ttl) if ttl > 0 && !absolute => abs(1, true, ttl).map(|at| {
                    let mut out = own(argv);
                    out[2] = at;
                    out.push(b"ABSTTL".to_vec());
                    vec![out]
                }),
                _ => None,
            }
        }
        "incrbyfloat" => reply_bulks(reply)
            .and_then(|v| v.into_iter().next())
            .map(|v| {
                vec![vec![
                    b"SET".to_vec(),
                    argv[1].to_vec(),
                    v,
                    b"KEEPTTL".to_vec(),
                ]]
            }),
        "hincrbyfloat" => reply_bulks(reply)
            .and_then(|v| v.into_iter().next())
            .map(|v| {
                vec![vec![
                    b"HSET".to_vec(),
                    argv[1].to_vec(),
                    argv[2].to_vec(),
                    v,
                ]]
            }),
        "spop" => reply_bulks(reply).map(|members| {
            let mut srem = vec![b"SREM".to_vec(), argv[1].to_vec()];
            srem.extend(members);
            vec![srem]
        }),
        _ => None,
    };
    rewritten.unwrap_or_else(|| vec![own(argv)])
}

/// The bulk strings of a reply: one bulk, or an array or set of bulks.
fn reply_bulks(reply: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut pos = 0;
    let line = |pos: &mut usize| -> Option<(u8, i64)> {
        let rest = reply.get(*pos..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(rest.get(1..end)?).ok()?.parse().ok()?;
        let kind = *rest.first()?;
        *pos += end + 2;
        Some((kind, n))
    };
    let bulk = |pos: &mut usize, n: i64| -> Option<Vec<u8>> {
        let n = usize::try_from(n).ok()?;
        let v = reply.get(*pos..*pos + n)?.to_vec();
        *pos += n + 2;
        Some(v)
    };
    match line(&mut pos)? {
        (b'$', n) => Some(vec![bulk(&mut pos, n)?]),
        (b'*' | b'~', n) => {
            let mut out = Vec::new();
            for _ in 0..n {
                match line(&mut pos)? {
                    (b'$', n) => out.push(bulk(&mut pos, n)?),
                    _ => return None,
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// The AOF directory, relative to `dir`.
fn dir_of(server: &Server) -> PathBuf {
    PathBuf::from(server.config.get("appenddirname"))
}

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    pub name: String,
    pub seq: u64,
    /// b (base), h (history) or i (incr).
    pub kind: char,
}

/// Parses a manifest: `file <name> seq <n> type <b|h|i>` per line.
pub fn parse_manifest(text: &str) -> Result<Vec<ManifestFile>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (mut name, mut seq, mut kind) = (None, None, None);
        for pair in words.chunks(2) {
            match pair {
                ["file", v] => name = Some(v.trim_matches('"').to_string()),
                ["seq", v] => seq = v.parse().ok(),
                ["type", v] => kind = v.chars().next(),
                _ => {}
            }
        }
        match (name, seq, kind) {
            (Some(name), Some(seq), Some(kind @ ('b' | 'h' | 'i'))) => {
                out.push(ManifestFile { name, seq, kind })
            }
            _ => return Err(format!("Invalid AOF manifest file format: {line}")),
        }
    }
    Ok(out)
}

fn manifest_text(files: &[ManifestFile]) -> String {
    files
        .iter()
        .map(|f| format!("file {} seq {} type {}\n", f.name, f.seq, f.kind))
        .collect()
}

/// Writes the manifest through a temporary file renamed into place.
fn write_manifest(server: &Server, files: &[ManifestFile]) -> std::io::Result<()> {
    let dir = dir_of(server);
    let name = format!("{}.manifest", server.config.get("appendfilename"));
    let tmp = dir.join(format!("temp-{name}"));
    let mut f = File::create(&tmp)?;
    f.write_all(manifest_text(files).as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(&name))?;
    sync_dir(&dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Start-up: with `appendonly yes` the AOF is loaded when its manifest
/// exists (it takes precedence over the RDB dump); otherwise the dump is
/// loaded and, with `appendonly yes`, a new AOF is created from it. Then
/// the incr file is opened for appending.
pub fn load_at_start(server: &Server) -> Result<(), String> {
    if server.config.get("appendonly") != "yes" {
        return super::load(server);
    }
    let dir = dir_of(server);
    let manifest = dir.join(format!("{}.manifest", server.config.get("appendfilename")));
    let files = match std::fs::read_to_string(&manifest) {
        Ok(text) => parse_manifest(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            super::load(server)?;
            return create(server).map_err(|e| format!("Can't create the AOF: {e}"));
        }
        Err(e) => return Err(format!("Can't open the AOF manifest {manifest:?}: {e}")),
    };
    load_files(server, &files)?;
    *server.persist.aof.layout.lock() = Layout {
        base: files.iter().find(|f| f.kind == 'b').cloned(),
        incrs: files.iter().filter(|f| f.kind == 'i').cloned().collect(),
    };
    let Some(incr) = files.iter().rfind(|f| f.kind == 'i') else {
        // A directory with only a base: start a new incr file after it.
        return switch_incr(server).map_err(|e| e.to_string());
    };
    open_incr(server, &dir.join(&incr.name)).map_err(|e| e.to_string())
}

/// Creates a fresh AOF directory from the current data set: base 1, incr
/// 1 and the manifest (nothing else runs at start-up).
fn create(server: &Server) -> std::io::Result<()> {
    let dir = dir_of(server);
    std::fs::create_dir_all(&dir)?;
    let stem = server.config.get("appendfilename");
    let snapshot = begin_base(server);
    let base = format!("{stem}.1.base.{}", base_suffix(&snapshot));
    let incr = format!("{stem}.1.incr.aof");
    let result = super::write_snapshot_to(server, &snapshot, &dir.join(&base), true);
    server.keyspace.end_snapshot();
    result?;
    let size = std::fs::metadata(dir.join(&base))?.len();
    server.persist.aof.base_size.store(size, Relaxed);
    open_incr(server, &dir.join(&incr))?;
    let layout = Layout {
        base: Some(ManifestFile {
            name: base,
            seq: 1,
            kind: 'b',
        }),
        incrs: vec![ManifestFile {
            name: incr,
            seq: 1,
            kind: 'i',
        }],
    };
    write_manifest(server, &layout.files())?;
    *server.persist.aof.layout.lock() = layout;
    Ok(())
}

/// Begins the snapshot a new base is written from, in the format
/// `aof-use-rdb-preamble` asks for.
fn begin_base(server: &Server) -> super::Snapshot {
    if server.config.get("aof-use-rdb-preamble") == "yes" {
        super::begin(server)
    } else {
        super::begin_as(server, super::Format::Aof)
    }
}

/// The extension of a base file written from `snapshot`.
fn base_suffix(snapshot: &super::Snapshot) -> &'static str {
    match snapshot.format() {
        super::Format::Rdb { .. } => "rdb",
        super::Format::Aof => "aof",
    }
}

/// Appends from now on to a new incr file, listed in the manifest after
/// the current ones. The caller holds the exclusive gate (or nothing else
/// runs), so every ticket issued is filled and goes to the old file.
fn switch_incr(server: &Server) -> std::io::Result<()> {
    let aof = &server.persist.aof;
    aof.flush(aof.issued(), true);
    let mut layout = aof.layout.lock();
    let seq = layout.incrs.last().map_or(0, |f| f.seq) + 1;
    let name = format!("{}.{seq}.incr.aof", server.config.get("appendfilename"));
    open_incr_file(server, &dir_of(server).join(&name), true)?;
    layout.incrs.push(ManifestFile {
        name,
        seq,
        kind: 'i',
    });
    write_manifest(server, &layout.files())
}

/// A BGREWRITEAOF begun: the snapshot the new base is written from.
pub struct RewriteJob {
    snapshot: super::Snapshot,
    /// Whether a new incr file was started (the AOF is on).
    switched: bool,
}

/// How BGREWRITEAOF went.
pub enum Rewrite {
    Started,
    Scheduled,
    InProgress,
    Failed(std::io::Error),
}

/// BGREWRITEAOF: marks the shards for a point-in-time snapshot, starts a
/// new incr file (the manifest lists base, old incrs and the new one, so a
/// crash meanwhile loses nothing) and hands the base to the saver thread.
/// The caller holds the exclusive gate. While a BGSAVE runs it is
/// scheduled instead, as Redis waits for its child.
pub fn start_rewrite(server: &Server) -> Rewrite {
    let p = &server.persist;
    let mut st = p.state.lock();
    if st.rewriting.is_some() {
        return Rewrite::InProgress;
    }
    if st.running.is_some() {
        st.rewrite_scheduled = true;
        return Rewrite::Scheduled;
    }
    st.rewrite_scheduled = false;
    let switched = p.aof.enabled();
    if switched {
        if let Err(e) = switch_incr(server) {
            p.aof.last_rewrite_failed.store(true, Relaxed);
            return Rewrite::Failed(e);
        }
    }
    st.rewriting = Some(Instant::now());
    st.rewrite_job = Some(RewriteJob {
        snapshot: begin_base(server),
        switched,
    });
    drop(st);
    tracing::info!("Background append only file rewriting started");
    p.changed.notify_all();
    Rewrite::Started
}

/// After CONFIG SET: `appendonly yes` asks the saver thread to start the
/// AOF ([`enable`]); `no` stops appending at once, after flushing.
pub fn config_changed(server: &Server) {
    let aof = &server.persist.aof;
    let want = server.config.get("appendonly") == "yes";
    aof.enable_requested.store(want && !aof.enabled(), Relaxed);
    if !want && aof.enabled() {
        aof.enabled.store(false, Relaxed);
        aof.flush(aof.issued(), true);
        *aof.file.lock() = None;
        tracing::info!("Append only file turned off");
    }
}

/// Whether the saver thread should start the AOF now (no snapshot runs).
pub fn enable_due(server: &Server) -> bool {
    let st = server.persist.state.lock();
    server.persist.aof.enable_requested.load(Relaxed)
        && st.running.is_none()
        && st.rewriting.is_none()
}

/// Turns the AOF on at runtime, as Redis's startAppendOnly: appending to
/// a fresh incr file starts at the same instant as the snapshot its base
/// is written from (the caller holds the exclusive gate); the manifest is
/// written once the base is, so until then the directory is unchanged.
pub fn enable(server: &Server) {
    let p = &server.persist;
    let aof = &p.aof;
    let mut st = p.state.lock();
    if !aof.enable_requested.swap(false, Relaxed) || st.running.is_some() || st.rewriting.is_some()
    {
        return;
    }
    let dir = dir_of(server);
    let name = format!("{}.1.incr.aof", server.config.get("appendfilename"));
    let opened =
        std::fs::create_dir_all(&dir).and_then(|()| open_incr_file(server, &dir.join(&name), true));
    if let Err(e) = opened {
        tracing::warn!("Can't open the append-only file: {e}");
        aof.last_write_ok.store(false, Relaxed);
        return;
    }
    aof.base_size.store(0, Relaxed);
    *aof.layout.lock() = Layout {
        base: None,
        incrs: vec![ManifestFile {
            name,
            seq: 1,
            kind: 'i',
        }],
    };
    st.rewriting = Some(Instant::now());
    st.rewrite_job = Some(RewriteJob {
        snapshot: begin_base(server),
        switched: true,
    });
    drop(st);
    tracing::info!("Background append only file rewriting started");
    p.changed.notify_all();
}

/// Asks for a BGREWRITEAOF once nothing else snapshots (inside EXEC).
pub fn schedule_rewrite(server: &Server) {
    server.persist.state.lock().rewrite_scheduled = true;
}

/// Whether a BGREWRITEAOF should start now: one was scheduled, or the
/// AOF has grown past `auto-aof-rewrite-min-size` and by
/// `auto-aof-rewrite-percentage` over its base (Redis's serverCron rule).
pub fn rewrite_due(server: &Server) -> bool {
    let st = server.persist.state.lock();
    if st.running.is_some() || st.rewriting.is_some() {
        return false;
    }
    if st.rewrite_scheduled {
        return true;
    }
    let aof = &server.persist.aof;
    let percent = server.config.get_i64("auto-aof-rewrite-percentage");
    let min = server.config.get_i64("auto-aof-rewrite-min-size");
    let current = aof.current_size.load(Relaxed) as i64;
    let base = (aof.base_size.load(Relaxed) as i64).max(1);
    let grown = aof.enabled() && percent > 0 && current > min;
    grown && (current - base).saturating_mul(100) / base >= percent && {
        tracing::info!(
            "Starting automatic rewriting of AOF on {}% growth",
            (current - base).saturating_mul(100) / base
        );
        true
    }
}

/// Whether a BGREWRITEAOF runs, and whether one waits to.
pub fn rewrite_state(server: &Server) -> (Option<Instant>, bool) {
    let st = server.persist.state.lock();
    (st.rewriting, st.rewrite_scheduled)
}

/// The saver thread's half of BGREWRITEAOF: writes the new base, then
/// swaps the manifest to (new base, new incr) and deletes the old files.
pub fn finish_rewrite(server: &Server, job: RewriteJob) {
    let p = &server.persist;
    let started = Instant::now();
    let result = write_base(server, &job);
    server.keyspace.end_snapshot();
    match result {
        Ok(()) => {
            p.aof.rewrites.fetch_add(1, Relaxed);
            p.aof.last_rewrite_failed.store(false, Relaxed);
            tracing::info!("Background AOF rewrite finished successfully");
        }
        Err(e) => {
            p.aof.last_rewrite_failed.store(true, Relaxed);
            tracing::warn!("Background AOF rewrite failed: {e}");
        }
    }
    p.aof
        .last_rewrite_secs
        .store(started.elapsed().as_secs(), Relaxed);
    p.state.lock().rewriting = None;
    p.changed.notify_all();
}

fn write_base(server: &Server, job: &RewriteJob) -> std::io::Result<()> {
    let aof = &server.persist.aof;
    let dir = dir_of(server);
    std::fs::create_dir_all(&dir)?;
    let seq = aof.layout.lock().base.as_ref().map_or(0, |b| b.seq) + 1;
    let name = format!(
        "{}.{seq}.base.{}",
        server.config.get("appendfilename"),
        base_suffix(&job.snapshot)
    );
    super::write_snapshot_to(server, &job.snapshot, &dir.join(&name), true)?;
    let size = std::fs::metadata(dir.join(&name))?.len();
    let mut layout = aof.layout.lock();
    let old_base = layout.base.replace(ManifestFile {
        name,
        seq,
        kind: 'b',
    });
    let keep = usize::from(job.switched);
    let old_incrs: Vec<ManifestFile> = {
        let n = layout.incrs.len().saturating_sub(keep);
        layout.incrs.drain(..n).collect()
    };
    write_manifest(server, &layout.files())?;
    drop(layout);
    for f in old_base.iter().chain(&old_incrs) {
        let _ = std::fs::remove_file(dir.join(&f.name));
    }
    let incr = aof.current_size.load(Relaxed) - aof.base_size.load(Relaxed);
    aof.base_size.store(size, Relaxed);
    aof.current_size.store(size + incr, Relaxed);
    Ok(())
}

fn open_incr(server: &Server, path: &Path) -> std::io::Result<()> {
    open_incr_file(server, path, false)
}

/// Opens an incr file for appending; `fresh` empties it first (a new
/// AOF replaces whatever an older one left under the same name).
fn open_incr_file(server: &Server, path: &Path, fresh: bool) -> std::io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    if fresh {
        file.set_len(0)?;
    }
    let aof = &server.persist.aof;
    let base = aof.base_size.load(Relaxed);
    aof.current_size
        .store(base + file.metadata()?.len(), Relaxed);
    let issued = aof.issued();
    *aof.file.lock() = Some(Incr {
        file,
        written: issued,
        synced: issued,
    });
    {
        let mut p = aof.pending.lock();
        p.upto = issued;
        // A new file starts with a SELECT, as Redis's do; records of a
        // previous AOF session that raced its end are dropped.
        p.db = None;
        p.buf.clear();
        p.parked.clear();
    }
    aof.last_write_ok.store(true, Relaxed);
    aof.enabled.store(true, Relaxed);
    Ok(())
}

/// Loads the base and incr files the manifest lists, in order.
fn load_files(server: &Server, files: &[ManifestFile]) -> Result<(), String> {
    let dir = dir_of(server);
    let start = Instant::now();
    let last_incr = files.iter().rposition(|f| f.kind == 'i');
    for (i, f) in files.iter().enumerate() {
        if f.kind == 'h' {
            continue;
        }
        let path = dir.join(&f.name);
        let data = std::fs::read(&path).map_err(|e| {
            format!(
                "Fatal error: can't open the append log file {}: {e}",
                f.name
            )
        })?;
        if f.kind == 'b' {
            server
                .persist
                .aof
                .base_size
                .store(data.len() as u64, Relaxed);
        }
        if data.starts_with(b"REDIS") {
            super::load_rdb(server, &data, &f.name)?;
            continue;
        }
        let truncate_ok = server.config.get("aof-load-truncated") == "yes";
        match replay(server, &data) {
            Ok(()) => {}
            Err(Replay::Truncated(valid)) if Some(i) == last_incr && truncate_ok => {
                tracing::warn!(
                    "!!! Warning: short read while loading the AOF file {}!!! AOF loaded anyway because aof-load-truncated is enabled",
                    f.name
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|file| file.set_len(valid as u64));
                if let Err(e) = file {
                    return Err(format!(
                        "Error truncating the AOF file {}: {e}",
                        f.name
                    ));
                }
                tracing::warn!("AOF {} loaded anyway because aof-load-truncated is enabled", f.name);
            }
            Err(Replay::Truncated(_)) => {
                return Err(format!(
                    "Unexpected end of file reading the append only file {}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.",
                    f.name
                ))
            }
            Err(Replay::Bad(offset)) => {
                return Err(format!(
                    "Bad file format reading the append only file {}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest> (bad data at offset {offset})",
                    f.name
                ))
            }
        }
    }
    tracing::info!(
        "DB loaded from append only file: {:.3} seconds",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Why replaying an AOF stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Replay {
    /// The file ends inside a command (or an open MULTI): the prefix up to
    /// this offset is complete.
    Truncated(usize),
    /// Not RESP at this offset.
    Bad(usize),
}

/// A command's arguments and the offset after it.
type Parsed<'a> = (Vec<&'a [u8]>, usize);

/// One parsed command: Ok(Some((argv, next offset))), Ok(None) when the
/// data ends first, Err on garbage.
fn parse_command(data: &[u8], pos: usize) -> Result<Option<Parsed<'_>>, ()> {
    let line = |p: usize, kind: u8| -> Result<Option<(usize, usize)>, ()> {
        let Some(rest) = data.get(p..) else {
            return Ok(None);
        };
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            // A partial header line is a truncation unless already bad.
            return match rest.first() {
                Some(&k) if k != kind => Err(()),
                _ => Ok(None),
            };
        };
        if rest.first() != Some(&kind) {
            return Err(());
        }
        let n = std::str::from_utf8(&rest[1..end])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or(())?;
        Ok(Some((n, p + end + 2)))
    };
    let Some((argc, mut p)) = line(pos, b'*')? else {
        return Ok(None);
    };
    if argc == 0 {
        return Err(());
    }
    let mut argv = Vec::with_capacity(argc.min(1024));
    for _ in 0..argc {
        let Some((len, q)) = line(p, b'$')? else {
            return Ok(None);
        };
        let Some(end) = q.checked_add(len).and_then(|e| e.checked_add(2)) else {
            return Err(());
        };
        if end > data.len() {
            return Ok(None);
        }
        if &data[end - 2..end] != b"\r\n" {
            return Err(());
        }
        argv.push(&data[q..end - 2]);
        p = end;
    }
    Ok(Some((argv, p)))
}

/// Replays an incr (or RESP base) file through the command table as a
/// loading client. MULTI ... EXEC groups run at their EXEC, so a file
/// ending inside one applies none of it.
pub fn replay(server: &Server, data: &[u8]) -> Result<(), Replay> {
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let registered = server.clients.register(addr, addr, false);
    let mut client = Client::on_behalf_of(registered.shared.clone(), 0);
    server.clients.unregister(registered.shared.id);
    let mut pos = 0;
    let mut multi: Option<(usize, Vec<Vec<&[u8]>>)> = None;
    let mut reply = ferrokv_resp::Reply::new(ferrokv_resp::Protocol::Resp2);
    while pos < data.len() {
        if data[pos] == b'#' {
            // Redis's timestamp annotations (#TS:...).
            match data[pos..].windows(2).position(|w| w == b"\r\n") {
                Some(end) => {
                    pos += end + 2;
                    continue;
                }
                None => return Err(Replay::Truncated(pos)),
            }
        }
        let (argv, next) = match parse_command(data, pos) {
            Ok(Some(c)) => c,
            Ok(None) => return Err(Replay::Truncated(multi.map_or(pos, |(start, _)| start))),
            Err(()) => return Err(Replay::Bad(pos)),
        };
        let start = pos;
        pos = next;
        if args::is(argv[0], "multi") {
            multi = Some((start, Vec::new()));
            continue;
        }
        if args::is(argv[0], "exec") {
            for argv in multi.take().map(|(_, c)| c).unwrap_or_default() {
                run_loaded(server, &mut client, &mut reply, &argv);
            }
            continue;
        }
        match multi.as_mut() {
            Some((_, queued)) => queued.push(argv),
            None => run_loaded(server, &mut client, &mut reply, &argv),
        }
    }
    match multi {
        Some((start, _)) => Err(Replay::Truncated(start)),
        None => Ok(()),
    }
}

fn run_loaded(
    server: &Server,
    client: &mut Client,
    reply: &mut ferrokv_resp::Reply,
    argv: &[&[u8]],
) {
    match server.commands.resolve(argv) {
        Ok(r) => {
            // Never blocks, never propagates (the AOF is off while loading).
            crate::command::run_in_transaction(server, client, reply, &r, argv);
        }
        Err(e) => tracing::warn!("Unknown command in the AOF: {}", e.text()),
    }
    if reply.buf.first() == Some(&b'-') {
        tracing::warn!(
            "Error replaying the AOF: {}",
            String::from_utf8_lossy(&reply.buf)
        );
    }
    reply.buf.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
        let files = parse_manifest(text).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(manifest_text(&files), text);
        assert!(parse_manifest("file x seq y type b\n").is_err());
    }

    #[test]
    fn parse_commands() {
        let data = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPI";
        let (argv, next) = parse_command(data, 0).unwrap().unwrap();
        assert_eq!(argv, vec![&b"GET"[..], b"k"]);
        assert_eq!(parse_command(data, next), Ok(None));
        assert_eq!(parse_command(b"xx\r\n", 0), Err(()));
        assert_eq!(parse_command(b"*1\r\n$2\r\nabc\r\n", 0), Err(()));
    }

    #[test]
    fn rewrites_are_absolute() {
        let r = rewrite("setex", &[b"setex", b"k", b"10", b"v"], 1000, b"+OK\r\n");
        assert_eq!(
            r,
            vec![vec![
                b"SET".to_vec(),
                b"k".to_vec(),
                b"v".to_vec(),
                b"PXAT".to_vec(),
                b"11000".to_vec()
            ]]
        );
        let r = rewrite(
            "set",
            &[b"set", b"k", b"v", b"px", b"5", b"nx"],
            1000,
            b"+OK\r\n",
        );
        assert_eq!(
            r[0][3..],
            [b"PXAT".to_vec(), b"1005".to_vec(), b"nx".to_vec()]
        );
        let r = rewrite(
            "spop",
            &[b"spop", b"s", b"2"],
            0,
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        );
        assert_eq!(
            r,
            vec![vec![
                b"SREM".to_vec(),
                b"s".to_vec(),
                b"a".to_vec(),
                b"b".to_vec()
            ]]
        );
        let r = rewrite(
            "incrbyfloat",
            &[b"incrbyfloat", b"f", b"1.5"],
            0,
            b"$3\r\n2.5\r\n",
        );
        assert_eq!(
            r[0],
            vec![
                b"SET".to_vec(),
                b"f".to_vec(),
                b"2.5".to_vec(),
                b"KEEPTTL".to_vec()
            ]
        );
    }
}
