//! Keyspace commands: Redis's "generic" group (DEL, EXISTS, RENAME, COPY,
//! MOVE, KEYS, SCAN, OBJECT, the EXPIRE and TTL families ...) and the
//! database-wide DBSIZE, FLUSHDB, FLUSHALL and SWAPDB.
//!
//! FLUSHDB, FLUSHALL and SWAPDB run under the exclusive gate: they change
//! whole databases, so no other command may interleave with them, and
//! their place in the AOF (see persist::aof) is then unambiguous.
//!
//! Everything here works on keys whatever their type; reading or changing
//! a value's contents belongs to the type's own family.

use ferrokv_resp::DeferredKind;

use super::args::{self, is};
use super::{acl, flags, CmdError, Command, Ctx, Handler, Keys, NO_KEYS};
use crate::glob;
use crate::pubsub::events;
use crate::store::lazyfree::{self, LAZYFREE_THRESHOLD};
use crate::store::{lru_clock, Entry, Locked, ValueRef};

#[allow(clippy::too_many_arguments)]
const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: Keys,
    acl: u32,
    handler: Handler,
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
        group: "generic",
        summary,
        since,
    }
}

/// DBSIZE, FLUSHDB, FLUSHALL and SWAPDB are in Redis's "server" group.
const fn server_group(c: Command) -> Command {
    Command {
        group: "server",
        ..c
    }
}

const ONE_KEY: Keys = Keys {
    first: 1,
    last: 1,
    step: 1,
};
const TWO_KEYS: Keys = Keys {
    first: 1,
    last: 2,
    step: 1,
};
const ALL_KEYS: Keys = Keys {
    first: 1,
    last: -1,
    step: 1,
};
/// OBJECT <subcommand> key.
const SUB_KEY: Keys = Keys {
    first: 2,
    last: 2,
    step: 1,
};

const KS: u32 = acl::KEYSPACE;
const W: u32 = flags::WRITE;
const WF: u32 = flags::WRITE | flags::FAST;
const R: u32 = flags::READONLY;
const RF: u32 = flags::READONLY | flags::FAST;

pub const COMMANDS: &[Command] = &[
    cmd("del", -2, W, ALL_KEYS, KS, del, "Delete a key", "1.0.0"),
    cmd(
        "unlink",
        -2,
        WF,
        ALL_KEYS,
        KS,
        unlink,
        "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.",
        "4.0.0",
    ),
    cmd("exists", -2, RF, ALL_KEYS, KS, exists, "Determine if a key exists", "1.0.0"),
    cmd(
        "touch",
        -2,
        RF,
        ALL_KEYS,
        KS,
        touch,
        "Alters the last access time of a key(s). Returns the number of existing keys specified.",
        "3.2.1",
    ),
    cmd("type", 2, RF, ONE_KEY, KS, type_, "Determine the type stored at key", "1.0.0"),
    cmd("rename", 3, W, TWO_KEYS, KS, rename, "Rename a key", "1.0.0"),
    cmd(
        "renamenx",
        3,
        WF,
        TWO_KEYS,
        KS,
        renamenx,
        "Rename a key, only if the new key does not exist",
        "1.0.0",
    ),
    cmd("randomkey", 1, R, NO_KEYS, KS, randomkey, "Return a random key from the keyspace", "1.0.0"),
    server_group(cmd(
        "dbsize",
        1,
        RF,
        NO_KEYS,
        KS,
        dbsize,
        "Return the number of keys in the selected database",
        "1.0.0",
    )),
    cmd(
        "keys",
        2,
        R,
        NO_KEYS,
        KS | acl::DANGEROUS,
        keys,
        "Find all keys matching the given pattern",
        "1.0.0",
    ),
    cmd("scan", -2, R, NO_KEYS, KS, scan, "Incrementally iterate the keys space", "2.8.0"),
    server_group(cmd(
        "flushdb",
        -1,
        W | flags::EXCLUSIVE,
        NO_KEYS,
        KS | acl::DANGEROUS,
        flushdb,
        "Remove all keys from the current database",
        "1.0.0",
    )),
    server_group(cmd(
        "flushall",
        -1,
        W | flags::EXCLUSIVE,
        NO_KEYS,
        KS | acl::DANGEROUS,
        flushall,
        "Remove all keys from all databases",
        "1.0.0",
    )),
    Command {
        subcommands: OBJECT_SUBCOMMANDS,
        ..cmd(
            "object",
            -2,
            0,
            NO_KEYS,
            0,
            // Dispatch resolves a subcommand before any handler runs.
            object_help,
            "A container for object introspection commands",
            "2.2.3",
        )
    },
    server_group(cmd(
        "swapdb",
        3,
        WF | flags::EXCLUSIVE,
        NO_KEYS,
        KS | acl::DANGEROUS,
        swapdb,
        "Swaps two Redis databases",
        "4.0.0",
    )),
    cmd("move", 3, WF, ONE_KEY, KS, move_, "Move a key to another database", "1.0.0"),
    cmd("copy", -3, W | flags::DENYOOM, TWO_KEYS, KS, copy, "Copy a key", "6.2.0"),
    cmd("expire", -3, WF, ONE_KEY, KS, expire, "Set a key's time to live in seconds", "1.0.0"),
    cmd(
        "pexpire",
        -3,
        WF,
        ONE_KEY,
        KS,
        pexpire,
        "Set a key's time to live in milliseconds",
        "2.6.0",
    ),
    cmd(
        "expireat",
        -3,
        WF,
        ONE_KEY,
        KS,
        expireat,
        "Set the expiration for a key as a UNIX timestamp",
        "1.2.0",
    ),
    cmd(
        "pexpireat",
        -3,
        WF,
        ONE_KEY,
        KS,
        pexpireat,
        "Set the expiration for a key as a UNIX timestamp specified in milliseconds",
        "2.6.0",
    ),
    cmd("ttl", 2, RF, ONE_KEY, KS, ttl, "Get the time to live for a key in seconds", "1.0.0"),
    cmd("pttl", 2, RF, ONE_KEY, KS, pttl, "Get the time to live for a key in milliseconds", "2.6.0"),
    cmd(
        "expiretime",
        2,
        RF,
        ONE_KEY,
        KS,
        expiretime,
        "Get the expiration Unix timestamp for a key",
        "7.0.0",
    ),
    cmd(
        "pexpiretime",
        2,
        RF,
        ONE_KEY,
        KS,
        pexpiretime,
        "Get the expiration Unix timestamp for a key in milliseconds",
        "7.0.0",
    ),
    cmd("persist", 2, WF, ONE_KEY, KS, persist, "Remove the expiration from a key", "2.2.0"),
];

const OBJECT_SUBCOMMANDS: &[Command] = &[
    cmd(
        "refcount",
        3,
        R,
        SUB_KEY,
        KS,
        object_refcount,
        "Get the number of references to the value of the key",
        "2.2.3",
    ),
    cmd(
        "encoding",
        3,
        R,
        SUB_KEY,
        KS,
        object_encoding,
        "Inspect the internal encoding of a Redis object",
        "2.2.3",
    ),
    cmd(
        "idletime",
        3,
        R,
        SUB_KEY,
        KS,
        object_idletime,
        "Get the time since a Redis object was last accessed",
        "2.2.3",
    ),
    cmd(
        "freq",
        3,
        R,
        SUB_KEY,
        KS,
        object_freq,
        "Get the logarithmic access frequency counter of a Redis object",
        "4.0.0",
    ),
    cmd(
        "help",
        2,
        flags::LOADING | flags::STALE,
        NO_KEYS,
        KS,
        object_help,
        "Show helpful text about the different subcommands",
        "6.2.0",
    ),
];

const SAME_OBJECT: CmdError = CmdError::Static("ERR source and destination objects are the same");
const DB_RANGE: CmdError = CmdError::Static("ERR DB index is out of range");

fn is_expired(e: &Entry, now: i64) -> bool {
    matches!(e.expiry(), Some(at) if at <= now)
}

/// DEL key [key ...]: the number of keys removed.
fn del(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    del_generic(ctx, argv, false)
}

/// UNLINK key [key ...]: the number of keys removed. Like DEL, but values
/// that are expensive to free are freed in the background.
fn unlink(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    del_generic(ctx, argv, true)
}

fn del_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], lazy: bool) -> Result<(), CmdError> {
    let mut locked = ctx.lock(&argv[1..]);
    let mut n = 0;
    for key in &argv[1..] {
        if let Some(old) = locked.remove(key) {
            n += 1;
            ctx.modified(key);
            ctx.notify(events::GENERIC, "del", key);
            if lazy {
                free_unlinked(old);
            }
        }
    }
    ctx.finish(locked);
    ctx.reply.int(n);
    Ok(())
}

/// Frees a removed entry here when that is cheap, else in the background
/// (Redis's dbAsyncDelete).
fn free_unlinked(old: Entry) {
    let effort = match old.value() {
        ValueRef::Obj(o) => o.free_effort(),
        ValueRef::Int(_) | ValueRef::Emb(_) => 1,
    };
    if effort > LAZYFREE_THRESHOLD {
        lazyfree::free_later(old, 1);
    }
}

/// EXISTS key [key ...]: how many of the keys exist, a key named twice
/// counting twice.
fn exists(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    count_existing(ctx, argv, false)
}

/// TOUCH key [key ...]: how many of the keys exist; marks them accessed.
fn touch(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    count_existing(ctx, argv, true)
}

fn count_existing(ctx: &mut Ctx<'_>, argv: &[&[u8]], touch: bool) -> Result<(), CmdError> {
    let mut locked = ctx.lock(&argv[1..]);
    let mut n = 0;
    for key in &argv[1..] {
        let found = if touch {
            locked.get(key).is_some()
        } else {
            locked.exists(key)
        };
        ctx.read_lookup(&mut locked, key, found);
        n += found as i64;
    }
    ctx.finish(locked);
    ctx.reply.int(n);
    Ok(())
}

/// TYPE key: status reply with the type name, `none` when missing.
fn type_(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut locked = ctx.lock(&argv[1..2]);
    let name = locked.peek(argv[1]).map(|e| e.value().type_name());
    ctx.read_lookup(&mut locked, argv[1], name.is_some());
    ctx.finish(locked);
    ctx.reply.simple(name.unwrap_or("none"));
    Ok(())
}

/// RENAME key newkey: +OK; `ERR no such key` when key is missing. The TTL
/// moves with the key; renaming a key to itself changes nothing.
fn rename(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    rename_generic(ctx, argv, false)?;
    ctx.reply.ok();
    Ok(())
}

/// RENAMENX key newkey: 1 when renamed, 0 when newkey exists (or equals
/// key); `ERR no such key` when key is missing.
fn renamenx(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let renamed = rename_generic(ctx, argv, true)?;
    ctx.reply.int(renamed as i64);
    Ok(())
}

/// Redis's renameGenericCommand: whether the key was renamed.
fn rename_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], nx: bool) -> Result<bool, CmdError> {
    let (src, dst) = (argv[1], argv[2]);
    let mut locked = ctx.lock(&argv[1..3]);
    let result = if locked.get(src).is_none() {
        Err(CmdError::NoSuchKey)
    } else if src == dst || (nx && locked.get(dst).is_some()) {
        Ok(false)
    } else {
        match locked.remove(src) {
            Some(old) => {
                let expiry = old.expiry();
                locked.set(dst, old.into_value(), expiry);
                ctx.modified(src);
                ctx.modified(dst);
                // The destination is always added anew (an old one was
                // deleted first), as Redis's dbAdd reports it.
                ctx.notify(events::NEW, "new", dst);
                ctx.notify(events::GENERIC, "rename_from", src);
                ctx.notify(events::GENERIC, "rename_to", dst);
                Ok(true)
            }
            None => Err(CmdError::NoSuchKey),
        }
    };
    ctx.finish(locked);
    result
}

/// RANDOMKEY: a random key as a bulk string, nil when the database is
/// empty. Expired keys it comes across are deleted, as in Redis.
fn randomkey(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut expired = Vec::new();
    // Before the search deletes anything: a later write to a key it
    // deletes must be ordered after the deletion.
    ctx.take_ticket();
    let db = ctx.server.keyspace.db(ctx.client.db);
    let key = db.random_key(&mut rand::thread_rng(), ctx.now_ms, &mut expired);
    ctx.expired(ctx.client.db, &expired);
    drop(expired);
    match key {
        Some(k) => ctx.reply.bulk(&k),
        None => ctx.reply.null(),
    }
    Ok(())
}

/// DBSIZE: the number of keys in the selected database (expired keys not
/// yet reclaimed included, as in Redis).
fn dbsize(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    let n = ctx.server.keyspace.db(ctx.client.db).len();
    ctx.reply.int(n as i64);
    Ok(())
}

/// KEYS pattern: every live key matching the glob pattern, in no
/// particular order. Expired keys are skipped but, as in Redis, left for
/// the expiry cycle to delete.
fn keys(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let pattern = argv[1];
    // Redis short-cuts "*", which thereby also matches the empty key (the
    // matcher itself does not).
    let all = pattern == b"*";
    let now = ctx.now_ms;
    let reply = &mut *ctx.reply;
    let header = reply.deferred(DeferredKind::Array);
    let mut n = 0;
    ctx.server.keyspace.db(ctx.client.db).for_each(|e| {
        if (all || glob::matches(pattern, e.key(), false)) && !is_expired(e, now) {
            reply.bulk(e.key());
            n += 1;
        }
    });
    reply.set_deferred(header, n);
    Ok(())
}

/// SCAN's cursor as Redis reads it: `strtoul` over the text up to its
/// first NUL byte, refusing a leading space, anything after the digits
/// and overflow. A sign is accepted (`-1` is 2^64-1) and so is the empty
/// string (cursor 0).
pub(super) fn parse_cursor(arg: &[u8]) -> Result<u64, CmdError> {
    let invalid = || CmdError::Static("ERR invalid cursor");
    let s = arg.split(|&b| b == 0).next().unwrap_or_default();
    let Some(&first) = s.first() else {
        return Ok(0);
    };
    if matches!(first, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        return Err(invalid());
    }
    let (neg, digits) = match first {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(invalid());
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// A key a SCAN step returned, before the filters that need a lookup.
struct Scanned {
    key: Vec<u8>,
    expired: bool,
    type_name: &'static str,
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: a two-element
/// array, the next cursor (a bulk string, "0" when done) and the keys.
///
/// Like Redis, it visits buckets until it has seen COUNT keys (before
/// filtering), or visited COUNT*10 buckets, or the iteration ends. Expired
/// keys are deleted and left out; with TYPE they count as type `none`.
fn scan(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut cursor = parse_cursor(argv[1])?;
    let mut count: i64 = 10;
    let mut pattern = None;
    let mut wanted_type = None;
    let mut i = 2;
    while i < argv.len() {
        let has_value = i + 1 < argv.len();
        if is(argv[i], "count") && has_value {
            count = args::int(argv[i + 1])?;
            if count < 1 {
                return Err(CmdError::Syntax);
            }
        } else if is(argv[i], "match") && has_value {
            // "*" matches everything but is no filter at all in Redis,
            // so it lets the empty key through.
            pattern = Some(argv[i + 1]).filter(|p| *p != b"*");
        } else if is(argv[i], "type") && has_value {
            wanted_type = Some(argv[i + 1]);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }

    let now = ctx.now_ms;
    let db = ctx.server.keyspace.db(ctx.client.db);
    let count = count as u64;
    let mut budget = count.saturating_mul(10);
    let mut seen: u64 = 0;
    let mut found = Vec::new();
    loop {
        cursor = db.scan_step(cursor, |e| {
            seen += 1;
            if pattern.is_some_and(|p| !glob::matches(p, e.key(), false)) {
                return;
            }
            found.push(Scanned {
                key: e.key().to_vec(),
                expired: is_expired(e, now),
                type_name: e.value().type_name(),
            });
        });
        if cursor == 0 || budget == 0 {
            break;
        }
        budget -= 1;
        if seen >= count {
            break;
        }
    }

    // Expired keys are deleted by the lookup Redis does for them.
    let expired: Vec<&[u8]> = found
        .iter()
        .filter(|s| s.expired)
        .map(|s| &s.key[..])
        .collect();
    if !expired.is_empty() {
        let mut locked = ctx.lock(&expired);
        for s in found.iter_mut().filter(|s| s.expired) {
            s.expired = locked.peek(&s.key).is_none();
            // With TYPE, Redis looks each key up for reading (a miss).
            if s.expired && wanted_type.is_some() {
                ctx.read_lookup(&mut locked, &s.key, false);
            }
        }
        ctx.finish(locked);
    }
    let keep = |s: &Scanned| match wanted_type {
        Some(t) => {
            if !s.expired {
                ctx.read_hit();
            }
            let name = if s.expired { "none" } else { s.type_name };
            t.eq_ignore_ascii_case(name.as_bytes())
        }
        None => !s.expired,
    };
    let keys: Vec<&[u8]> = found
        .iter()
        .filter(|s| keep(s))
        .map(|s| &s.key[..])
        .collect();

    ctx.reply.array(2);
    ctx.reply
        .bulk(itoa::Buffer::new().format(cursor).as_bytes());
    ctx.reply.array(keys.len());
    for k in keys {
        ctx.reply.bulk(k);
    }
    Ok(())
}

/// FLUSHDB and FLUSHALL's optional argument: whether to free in the
/// background. Without one, the default is synchronous (Redis's
/// `lazyfree-lazy-user-flush no`).
fn flush_async(argv: &[&[u8]]) -> Result<bool, CmdError> {
    match argv {
        [_] => Ok(false),
        [_, mode] if is(mode, "sync") => Ok(false),
        [_, mode] if is(mode, "async") => Ok(true),
        _ => Err(CmdError::Syntax),
    }
}

/// Empties one database at once and frees its tables, in the background
/// when `lazy`; returns how many keys it held.
fn flush(ctx: &Ctx<'_>, db: usize, lazy: bool) -> u64 {
    let tables = ctx.server.keyspace.db(db).take_all();
    let removed = tables.iter().map(|t| t.len() as u64).sum();
    if lazy {
        lazyfree::free_later(tables, removed as usize);
    }
    removed
}

/// FLUSHDB [ASYNC|SYNC]: +OK once the selected database is empty.
fn flushdb(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let lazy = flush_async(argv)?;
    let db = ctx.client.db;
    let watched = ctx.watched_existing(db);
    let removed = flush(ctx, db, lazy);
    ctx.modified_dbs(&[(db, watched)], removed);
    ctx.reply.ok();
    Ok(())
}

/// FLUSHALL [ASYNC|SYNC]: +OK once every database is empty.
fn flushall(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let lazy = flush_async(argv)?;
    let dbs = 0..ctx.server.keyspace.len();
    let watched: Vec<_> = dbs
        .clone()
        .map(|db| (db, ctx.watched_existing(db)))
        .collect();
    let removed: u64 = dbs.map(|db| flush(ctx, db, lazy)).sum();
    // Redis counts the flush itself as one more change.
    ctx.modified_dbs(&watched, removed + 1);
    ctx.reply.ok();
    Ok(())
}

/// A database index given as Redis's getIntFromObjectOrReply reads it,
/// then checked against the number of databases.
fn target_db(ctx: &Ctx<'_>, arg: &[u8]) -> Result<usize, CmdError> {
    let n = args::int(arg)?;
    if i32::try_from(n).is_err() {
        return Err(CmdError::Static(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    usize::try_from(n)
        .ok()
        .filter(|&db| db < ctx.server.keyspace.len())
        .ok_or(DB_RANGE)
}

/// SWAPDB index1 index2: +OK; clients keep their database number and see
/// the other database's keys.
fn swapdb(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let index = |arg: &[u8], invalid: &'static str| {
        args::parse_i64_exact(arg)
            .filter(|n| i32::try_from(*n).is_ok())
            .ok_or(CmdError::Static(invalid))
    };
    let a = index(argv[1], "ERR invalid first DB index")?;
    let b = index(argv[2], "ERR invalid second DB index")?;
    let dbs = ctx.server.keyspace.len() as i64;
    if !(0..dbs).contains(&a) || !(0..dbs).contains(&b) {
        return Err(DB_RANGE);
    }
    let (a, b) = (a as usize, b as usize);
    // A key watched in either database changes if it exists in either.
    let mut in_a = ctx.watched_existing(a);
    let mut in_b = ctx.watched_existing(b);
    ctx.server.keyspace.swap(a, b);
    in_a.extend(ctx.watched_existing(a));
    in_b.extend(ctx.watched_existing(b));
    ctx.modified_dbs(&[(a, in_a), (b, in_b)], 1);
    ctx.reply.ok();
    Ok(())
}

/// MOVE key db: 1 when moved, 0 when the key is missing or already exists
/// in the target database. The TTL moves with the key.
fn move_(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let key = argv[1];
    let dst = target_db(ctx, argv[2])?;
    let src = ctx.client.db;
    if src == dst {
        return Err(SAME_OBJECT);
    }
    let mut locked = ctx
        .server
        .keyspace
        .lock_across(src, &[(src, key), (dst, key)], ctx.now_ms);
    let moved = locked.get_in(src, key).is_some()
        && locked.get_in(dst, key).is_none()
        && move_entry(&mut locked, (src, key), (dst, key));
    if moved {
        ctx.modified_in(src, key);
        ctx.modified_in(dst, key);
        ctx.notify_in(dst, events::NEW, "new", key);
        ctx.notify_in(src, events::GENERIC, "move_from", key);
        ctx.notify_in(dst, events::GENERIC, "move_to", key);
    }
    ctx.finish(locked);
    ctx.reply.int(moved as i64);
    Ok(())
}

/// Moves the entry at `from` to `to` with its expiry; false when `from`
/// is missing.
fn move_entry(locked: &mut Locked<'_>, from: (usize, &[u8]), to: (usize, &[u8])) -> bool {
    let Some(old) = locked.remove_in(from.0, from.1) else {
        return false;
    };
    let expiry = old.expiry();
    locked.set_in(to.0, to.1, old.into_value(), expiry);
    true
}

/// COPY source destination [DB destination-db] [REPLACE]: 1 when copied,
/// 0 when source is missing or destination exists without REPLACE. The
/// copy keeps the value's encoding and the TTL.
fn copy(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (src_key, dst_key) = (argv[1], argv[2]);
    let src = ctx.client.db;
    let mut dst = src;
    let mut replace = false;
    let mut j = 3;
    while j < argv.len() {
        if is(argv[j], "replace") {
            replace = true;
        } else if is(argv[j], "db") && j + 1 < argv.len() {
            dst = target_db(ctx, argv[j + 1])?;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if src == dst && src_key == dst_key {
        return Err(SAME_OBJECT);
    }
    let mut locked =
        ctx.server
            .keyspace
            .lock_across(src, &[(src, src_key), (dst, dst_key)], ctx.now_ms);
    let found = locked.get_in(src, src_key).is_some();
    ctx.read_lookup(&mut locked, src_key, found);
    let copied = found && (replace || locked.get_in(dst, dst_key).is_none()) && {
        let copy = locked
            .get_in(src, src_key)
            .map(|e| (e.value().to_value(), e.expiry()));
        match copy {
            Some((value, expiry)) => {
                locked.set_in(dst, dst_key, value, expiry);
                true
            }
            None => false,
        }
    };
    if copied {
        ctx.modified_in(dst, dst_key);
        ctx.notify_in(dst, events::NEW, "new", dst_key);
        ctx.notify_in(dst, events::GENERIC, "copy_to", dst_key);
    }
    ctx.finish(locked);
    ctx.reply.int(copied as i64);
    Ok(())
}

/// EXPIRE key seconds [NX|XX|GT|LT]: 1 when the TTL was set, 0 when the key
/// is missing or the condition failed.
fn expire(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let now = ctx.now_ms;
    expire_generic(ctx, argv, "expire", now, 1000)
}

/// PEXPIRE key milliseconds [NX|XX|GT|LT]: as EXPIRE.
fn pexpire(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let now = ctx.now_ms;
    expire_generic(ctx, argv, "pexpire", now, 1)
}

/// EXPIREAT key unix-time-seconds [NX|XX|GT|LT]: as EXPIRE.
fn expireat(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    expire_generic(ctx, argv, "expireat", 0, 1000)
}

/// PEXPIREAT key unix-time-milliseconds [NX|XX|GT|LT]: as EXPIRE.
fn pexpireat(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    expire_generic(ctx, argv, "pexpireat", 0, 1)
}

/// Redis's expireGenericCommand: the time is `argv[2]` units of `unit_ms`
/// after `base_ms`. A time not in the future deletes the key (and counts
/// as setting it). GT treats "no TTL" as infinite; LT lets any time
/// replace "no TTL".
fn expire_generic(
    ctx: &mut Ctx<'_>,
    argv: &[&[u8]],
    name: &str,
    base_ms: i64,
    unit_ms: i64,
) -> Result<(), CmdError> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &argv[3..] {
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if is(opt, "gt") {
            gt = true;
        } else if is(opt, "lt") {
            lt = true;
        } else {
            // Redis formats the option with %s: it ends at a NUL byte.
            let text = opt.split(|&b| b == 0).next().unwrap_or_default();
            return Err(CmdError::Owned(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(text)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::Static(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::Static(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let invalid = || CmdError::Owned(format!("ERR invalid expire time in '{name}' command"));
    let when = args::int(argv[2])?
        .checked_mul(unit_ms)
        .and_then(|t| t.checked_add(base_ms))
        .ok_or_else(invalid)?;

    let key = argv[1];
    let mut locked = ctx.lock(&argv[1..2]);
    // The notification names what happened: a time already past deletes.
    let event = match locked.get(key).map(|e| e.expiry()) {
        None => None,
        Some(current) => {
            let refused = (nx && current.is_some())
                || (xx && current.is_none())
                || (gt && current.is_none_or(|c| when <= c))
                || (lt && current.is_some_and(|c| when >= c));
            if refused {
                None
            } else if when <= ctx.now_ms {
                locked.remove(key);
                Some("del")
            } else {
                locked.set_expiry(key, Some(when)).then_some("expire")
            }
        }
    };
    if let Some(event) = event {
        ctx.modified(key);
        ctx.notify(events::GENERIC, event, key);
    }
    ctx.finish(locked);
    ctx.reply.int(event.is_some() as i64);
    Ok(())
}

/// TTL key: remaining seconds (rounded), -1 without a TTL, -2 when missing.
fn ttl(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ttl_generic(ctx, argv, false, false)
}

/// PTTL key: remaining milliseconds, -1 without a TTL, -2 when missing.
fn pttl(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ttl_generic(ctx, argv, true, false)
}

/// EXPIRETIME key: the expiry as unix seconds (rounded), -1 or -2 as TTL.
fn expiretime(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ttl_generic(ctx, argv, false, true)
}

/// PEXPIRETIME key: the expiry as unix milliseconds, -1 or -2 as TTL.
fn pexpiretime(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ttl_generic(ctx, argv, true, true)
}

/// Redis's ttlGenericCommand: seconds are rounded to the nearest (computed
/// wide, so an expiry near i64::MAX does not overflow).
fn ttl_generic(
    ctx: &mut Ctx<'_>,
    argv: &[&[u8]],
    ms: bool,
    absolute: bool,
) -> Result<(), CmdError> {
    let mut locked = ctx.lock(&argv[1..2]);
    let found = locked.peek(argv[1]).map(|e| e.expiry());
    ctx.read_lookup(&mut locked, argv[1], found.is_some());
    ctx.finish(locked);
    let n = match found {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => {
            let t = if absolute {
                at
            } else {
                at.saturating_sub(ctx.now_ms)
            }
            .max(0);
            if ms {
                t
            } else {
                ((i128::from(t) + 500) / 1000) as i64
            }
        }
    };
    ctx.reply.int(n);
    Ok(())
}

/// PERSIST key: 1 when a TTL was removed, 0 when the key is missing or
/// has none.
fn persist(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let key = argv[1];
    let mut locked = ctx.lock(&argv[1..2]);
    let had_ttl = locked.get(key).is_some_and(|e| e.expiry().is_some());
    let removed = had_ttl && locked.set_expiry(key, None);
    if removed {
        ctx.modified(key);
        ctx.notify(events::GENERIC, "persist", key);
    }
    ctx.finish(locked);
    ctx.reply.int(removed as i64);
    Ok(())
}

/// Looks up OBJECT's key without marking it accessed and applies `f`;
/// None when it is missing.
fn object_lookup<T>(ctx: &mut Ctx<'_>, argv: &[&[u8]], f: impl FnOnce(&Entry) -> T) -> Option<T> {
    let mut locked = ctx.lock(&argv[2..3]);
    let result = locked.peek(argv[2]).map(|e| f(&e));
    ctx.server.stats.hit(result.is_some());
    ctx.finish(locked);
    result
}

/// OBJECT ENCODING key: the encoding name as a bulk string, nil when the
/// key is missing.
fn object_encoding(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    match object_lookup(ctx, argv, |e| e.value().encoding()) {
        Some(name) => ctx.reply.bulk(name.as_bytes()),
        None => ctx.reply.null(),
    }
    Ok(())
}

/// Redis's OBJ_SHARED_REFCOUNT, reported for its shared integers.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;
/// Redis keeps one shared object for each integer below this.
const SHARED_INTEGERS: i64 = 10_000;

/// OBJECT REFCOUNT key: what Redis would report: its shared small
/// integers have the "shared" count, every other value a count of 1.
fn object_refcount(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let refcount = object_lookup(ctx, argv, |e| match e.value() {
        ValueRef::Int(n) if (0..SHARED_INTEGERS).contains(&n) => SHARED_REFCOUNT,
        _ => 1,
    });
    match refcount {
        Some(n) => ctx.reply.int(n),
        None => ctx.reply.null(),
    }
    Ok(())
}

/// OBJECT IDLETIME key: seconds since the key was last accessed, from the
/// 24-bit LRU clock (which wraps every 194 days, as Redis's does); nil
/// when the key is missing.
fn object_idletime(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    const CLOCK_MAX: u32 = (1 << 24) - 1;
    let now = lru_clock(ctx.now_ms);
    let idle = object_lookup(ctx, argv, |e| {
        let then = e.clock();
        if now >= then {
            now - then
        } else {
            now + (CLOCK_MAX - then)
        }
    });
    match idle {
        Some(secs) => ctx.reply.int(i64::from(secs)),
        None => ctx.reply.null(),
    }
    Ok(())
}

/// OBJECT FREQ key: an error, since ferrokv has no LFU eviction policy
/// and so tracks no access frequency; nil when the key is missing.
fn object_freq(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if object_lookup(ctx, argv, |_| ()).is_none() {
        ctx.reply.null();
        return Ok(());
    }
    Err(CmdError::Static(
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
         Please note that when switching between policies at runtime LRU and LFU data \
         will take some time to adjust.",
    ))
}

/// OBJECT HELP: the subcommands, one status line each.
fn object_help(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<(), CmdError> {
    const LINES: &[&str] = &[
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    ];
    ctx.reply.array(LINES.len());
    for line in LINES {
        ctx.reply.simple(line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_as_strtoul() {
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"+5"), Ok(5));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"7\x00junk"), Ok(7));
        assert_eq!(parse_cursor(b"\x001"), Ok(0));
        for bad in [&b" 1"[..], b"18446744073709551616", b"1x", b"+", b"-", b"x"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
