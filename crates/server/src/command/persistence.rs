//! Persistence commands: SAVE, BGSAVE, BGREWRITEAOF and LASTSAVE (Redis's "server"
//! group), DUMP and RESTORE (its "generic" group). The snapshot machinery
//! and the payload format live in crate::persist.

use super::args::{self, is};
use super::{acl, flags, CmdError, Command, Ctx, Handler, Keys, NO_KEYS};
use crate::persist::{self, rdb};
use crate::store::lru_clock;

#[allow(clippy::too_many_arguments)]
const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: Keys,
    acl: u32,
    handler: Handler,
    group: &'static str,
    summary: &'static str,
    since: &'static str,
) -> Command {
    Command {
        name,
        arity,
        flags,
        keys,
        acl,
        handler,
        subcommands: &[],
        group,
        summary,
        since,
    }
}

const ONE_KEY: Keys = Keys {
    first: 1,
    last: 1,
    step: 1,
};

pub const COMMANDS: &[Command] = &[
    cmd(
        "save",
        1,
        flags::ADMIN
            | flags::NOSCRIPT
            | flags::NO_ASYNC_LOADING
            | flags::NO_MULTI
            | flags::EXCLUSIVE,
        NO_KEYS,
        0,
        save,
        "server",
        "Synchronously save the dataset to disk",
        "1.0.0",
    ),
    cmd(
        "bgsave",
        -1,
        flags::ADMIN | flags::NOSCRIPT | flags::NO_ASYNC_LOADING | flags::EXCLUSIVE,
        NO_KEYS,
        0,
        bgsave,
        "server",
        "Asynchronously save the dataset to disk",
        "1.0.0",
    ),
    cmd(
        "bgrewriteaof",
        1,
        flags::ADMIN | flags::NOSCRIPT | flags::NO_ASYNC_LOADING | flags::EXCLUSIVE,
        NO_KEYS,
        0,
        bgrewriteaof,
        "server",
        "Asynchronously rewrite the append-only file",
        "1.0.0",
    ),
    cmd(
        "lastsave",
        1,
        flags::LOADING | flags::STALE | flags::FAST,
        NO_KEYS,
        acl::ADMIN | acl::DANGEROUS,
        lastsave,
        "server",
        "Get the UNIX time stamp of the last successful save to disk",
        "1.0.0",
    ),
    cmd(
        "dump",
        2,
        flags::READONLY,
        ONE_KEY,
        acl::KEYSPACE,
        dump,
        "generic",
        "Return a serialized version of the value stored at the specified key.",
        "2.6.0",
    ),
    cmd(
        "restore",
        -4,
        flags::WRITE | flags::DENYOOM,
        ONE_KEY,
        acl::KEYSPACE | acl::DANGEROUS,
        restore,
        "generic",
        "Create a key using the provided serialized value, previously obtained using DUMP.",
        "2.6.0",
    ),
];

const IN_PROGRESS: CmdError = CmdError::Static("ERR Background save already in progress");

/// SAVE: +OK once the snapshot is on disk; an error while a BGSAVE runs
/// or when writing fails. Runs under the exclusive gate: like Redis's SAVE
/// it holds every other client off until the file is written.
fn save(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    match persist::save(ctx.server) {
        Ok(()) => {
            ctx.reply.ok();
            Ok(())
        }
        Err(persist::SaveError::InProgress) => Err(IN_PROGRESS),
        Err(persist::SaveError::Io(e)) => {
            tracing::warn!("SAVE failed: {e}");
            Err(CmdError::Static("ERR"))
        }
    }
}

/// BGSAVE [SCHEDULE]: +Background saving started, or +Background saving
/// scheduled inside MULTI/EXEC (as Redis defers it past the transaction);
/// an error while another BGSAVE runs. Runs under the exclusive gate,
/// which the snapshot needs for an instant to mark the shards.
fn bgsave(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    match argv {
        [_] => {}
        [_, opt] if is(opt, "schedule") => {}
        _ => return Err(CmdError::Syntax),
    }
    if ctx.server.persist.bgsave_in_progress() {
        return Err(IN_PROGRESS);
    }
    if ctx.in_transaction() {
        ctx.server.persist.schedule();
        ctx.reply.simple("Background saving scheduled");
        return Ok(());
    }
    match persist::start_bgsave(ctx.server) {
        Ok(()) => ctx.reply.simple("Background saving started"),
        Err(persist::StartError::InProgress) => return Err(IN_PROGRESS),
    }
    Ok(())
}

/// LASTSAVE: the unix time of the last successful save, as an integer.
fn lastsave(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let t = ctx
        .server
        .persist
        .last_save
        .load(std::sync::atomic::Ordering::Relaxed);
    ctx.reply.int(t);
    Ok(())
}

/// DUMP key: the value's serialization (RDB encoding, RDB version, CRC-64)
/// as a bulk string, or a null bulk when the key does not exist.
fn dump(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let compress = ctx.server.config.get("rdbcompression") == "yes";
    let fill = crate::persist::encodings(ctx.server).list_fill;
    let mut locked = ctx.lock(&argv[1..2]);
    let payload = locked
        .get(argv[1])
        .map(|e| rdb::dump(e.value(), compress, fill));
    ctx.read_lookup(&mut locked, argv[1], payload.is_some());
    ctx.finish(locked);
    match payload {
        Some(p) => ctx.reply.bulk(&p),
        None => ctx.reply.null(),
    }
    Ok(())
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
/// [FREQ frequency]: +OK; BUSYKEY when the key exists without REPLACE;
/// errors for a bad TTL, option value, or payload. A TTL already in the
/// past deletes the key (with REPLACE) and stores nothing, as Redis does.
fn restore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let key = argv[1];
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<i64>, Option<i64>) = (None, None);
    let mut j = 4;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        if is(argv[j], "replace") {
            replace = true;
        } else if is(argv[j], "absttl") {
            absttl = true;
        } else if is(argv[j], "idletime") && more && freq.is_none() {
            let v = args::int(argv[j + 1])?;
            if v < 0 {
                return Err(CmdError::Static("ERR Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(v);
            j += 1;
        } else if is(argv[j], "freq") && more && idle.is_none() {
            let v = args::int(argv[j + 1])?;
            if !(0..=255).contains(&v) {
                return Err(CmdError::Static(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            freq = Some(v);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let mut locked = ctx.lock(&argv[1..2]);
    let result = restore_locked(ctx, &mut locked, argv, key, replace, absttl, idle);
    ctx.finish(locked);
    result
}

/// Redis's reply to a DUMP or FUNCTION DUMP payload it refuses.
pub(super) fn payload_error(e: rdb::RestoreError) -> CmdError {
    match e {
        rdb::RestoreError::VersionOrChecksum => {
            CmdError::Static("ERR DUMP payload version or checksum are wrong")
        }
        rdb::RestoreError::BadFormat => CmdError::Static("ERR Bad data format"),
    }
}

/// RESTORE's checks and store, in Redis's order, under the key's lock.
fn restore_locked(
    ctx: &mut Ctx<'_>,
    locked: &mut crate::store::Locked<'_>,
    argv: &[&[u8]],
    key: &[u8],
    replace: bool,
    absttl: bool,
    idle: Option<i64>,
) -> Result<(), CmdError> {
    if !replace && locked.exists(key) {
        return Err(CmdError::Static("BUSYKEY Target key name already exists."));
    }
    let ttl = args::int(argv[2])?;
    if ttl < 0 {
        return Err(CmdError::Static("ERR Invalid TTL value, must be >= 0"));
    }
    let value = rdb::restore(argv[3], persist::encodings(ctx.server)).map_err(payload_error)?;
    let deleted = replace && locked.remove(key).is_some();
    let at = match ttl {
        0 => None,
        t if absttl => Some(t),
        t => Some(t.saturating_add(ctx.now_ms)),
    };
    if at.is_some_and(|at| at <= ctx.now_ms) {
        if deleted {
            ctx.modified(key);
        }
        ctx.reply.ok();
        return Ok(());
    }
    locked.set(key, value, at);
    if let (Some(idle), Some(mut e)) = (idle, locked.peek(key)) {
        // Redis's objectSetLRUOrLFU: the access time `idle` seconds back on
        // the 24-bit wrapping clock (FREQ only matters under LFU eviction).
        const LRU_CLOCK_MAX: i64 = (1 << 24) - 1;
        let mut abs = i64::from(lru_clock(ctx.now_ms)) - idle;
        if abs < 0 {
            abs = abs.rem_euclid(LRU_CLOCK_MAX);
        }
        e.get_mut().set_clock(abs as u32);
    }
    ctx.modified(key);
    ctx.reply.ok();
    Ok(())
}

/// BGREWRITEAOF: +Background append only file rewriting started, or
/// +...scheduled while a BGSAVE runs or inside MULTI/EXEC; an error while
/// another rewrite runs. Runs under the exclusive gate, which the snapshot
/// and the switch to a new incr file need for an instant.
fn bgrewriteaof(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    use persist::aof::{self, Rewrite};
    let (running, _) = aof::rewrite_state(ctx.server);
    if running.is_some() {
        return Err(REWRITE_IN_PROGRESS);
    }
    if ctx.in_transaction() {
        aof::schedule_rewrite(ctx.server);
        ctx.reply
            .simple("Background append only file rewriting scheduled");
        return Ok(());
    }
    match aof::start_rewrite(ctx.server) {
        Rewrite::Started => ctx
            .reply
            .simple("Background append only file rewriting started"),
        Rewrite::Scheduled => ctx
            .reply
            .simple("Background append only file rewriting scheduled"),
        Rewrite::InProgress => return Err(REWRITE_IN_PROGRESS),
        Rewrite::Failed(e) => {
            tracing::warn!("Can't rewrite append only file in background: {e}");
            return Err(CmdError::Static(
                "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.",
            ));
        }
    }
    Ok(())
}

const REWRITE_IN_PROGRESS: CmdError =
    CmdError::Static("ERR Background append only file rewriting already in progress");
