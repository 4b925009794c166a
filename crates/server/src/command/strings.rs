//! String commands: Redis 7.0's string family (GET/SET and their variants,
//! MGET/MSET, ranges, counters, INCRBYFLOAT and LCS).
//!
//! Values are stored with Redis's encodings (`int`, `embstr`, `raw`, see
//! store::entry): SET-like writes pick one with `Value::string`, counters
//! store `Value::Int`, values grown in place (APPEND, SETRANGE) are `raw`.
//! Every reply is built from the bytes a client would read back with GET.
//! Commands that modify a value keep its TTL, commands that replace it
//! (SET without KEEPTTL, GETSET, MSET) drop it, as in Redis.

mod lcs;
/// Shared with HINCRBYFLOAT, which does the same long double arithmetic.
pub(super) mod ldouble;

use std::sync::atomic::Ordering::Relaxed;

use super::args::{int, is, parse_i64_exact};
use super::{acl, flags, CmdError, Command, Ctx, Family, Keys};
use crate::pubsub::events;
use crate::store::entry::EMBSTR_MAX;
use crate::store::{EntryMut, Locked, Object, Value, ValueRef};

const FAMILY: Family = Family {
    acl: acl::STRING,
    group: "string",
};

const ONE_KEY: Keys = Keys {
    first: 1,
    last: 1,
    step: 1,
};

const W: u32 = flags::WRITE;
const R: u32 = flags::READONLY;
const DENYOOM: u32 = flags::DENYOOM;
const FAST: u32 = flags::FAST;

pub const COMMANDS: &[Command] = &[
    FAMILY.cmd(
        "get",
        2,
        R | FAST,
        ONE_KEY,
        get,
        "Get the value of a key",
        "1.0.0",
    ),
    FAMILY.cmd(
        "set",
        -3,
        W | DENYOOM,
        ONE_KEY,
        set,
        "Set the string value of a key",
        "1.0.0",
    ),
    FAMILY.cmd(
        "setnx",
        3,
        W | DENYOOM | FAST,
        ONE_KEY,
        setnx,
        "Set the value of a key, only if the key does not exist",
        "1.0.0",
    ),
    FAMILY.cmd(
        "setex",
        4,
        W | DENYOOM,
        ONE_KEY,
        setex,
        "Set the value and expiration of a key",
        "2.0.0",
    ),
    FAMILY.cmd(
        "psetex",
        4,
        W | DENYOOM,
        ONE_KEY,
        psetex,
        "Set the value and expiration in milliseconds of a key",
        "2.6.0",
    ),
    FAMILY.cmd(
        "getex",
        -2,
        W | FAST,
        ONE_KEY,
        getex,
        "Get the value of a key and optionally set its expiration",
        "6.2.0",
    ),
    FAMILY.cmd(
        "getdel",
        2,
        W | FAST,
        ONE_KEY,
        getdel,
        "Get the value of a key and delete the key",
        "6.2.0",
    ),
    FAMILY.cmd(
        "getset",
        3,
        W | DENYOOM | FAST,
        ONE_KEY,
        getset,
        "Set the string value of a key and return its old value",
        "1.0.0",
    ),
    FAMILY.cmd(
        "mget",
        -2,
        R | FAST,
        Keys {
            first: 1,
            last: -1,
            step: 1,
        },
        mget,
        "Get the values of all the given keys",
        "1.0.0",
    ),
    FAMILY.cmd(
        "mset",
        -3,
        W | DENYOOM,
        PAIRS,
        mset,
        "Set multiple keys to multiple values",
        "1.0.1",
    ),
    FAMILY.cmd(
        "msetnx",
        -3,
        W | DENYOOM,
        PAIRS,
        msetnx,
        "Set multiple keys to multiple values, only if none of the keys exist",
        "1.0.1",
    ),
    FAMILY.cmd(
        "append",
        3,
        W | DENYOOM | FAST,
        ONE_KEY,
        append,
        "Append a value to a key",
        "2.0.0",
    ),
    FAMILY.cmd(
        "strlen",
        2,
        R | FAST,
        ONE_KEY,
        strlen,
        "Get the length of the value stored in a key",
        "2.2.0",
    ),
    FAMILY.cmd(
        "getrange",
        4,
        R,
        ONE_KEY,
        getrange,
        "Get a substring of the string stored at a key",
        "2.4.0",
    ),
    FAMILY.cmd(
        "substr",
        4,
        R,
        ONE_KEY,
        getrange,
        "Get a substring of the string stored at a key",
        "1.0.0",
    ),
    FAMILY.cmd(
        "setrange",
        4,
        W | DENYOOM,
        ONE_KEY,
        setrange,
        "Overwrite part of a string at key starting at the specified offset",
        "2.2.0",
    ),
    FAMILY.cmd(
        "incr",
        2,
        W | DENYOOM | FAST,
        ONE_KEY,
        incr,
        "Increment the integer value of a key by one",
        "1.0.0",
    ),
    FAMILY.cmd(
        "decr",
        2,
        W | DENYOOM | FAST,
        ONE_KEY,
        decr,
        "Decrement the integer value of a key by one",
        "1.0.0",
    ),
    FAMILY.cmd(
        "incrby",
        3,
        W | DENYOOM | FAST,
        ONE_KEY,
        incrby,
        "Increment the integer value of a key by the given amount",
        "1.0.0",
    ),
    FAMILY.cmd(
        "decrby",
        3,
        W | DENYOOM | FAST,
        ONE_KEY,
        decrby,
        "Decrement the integer value of a key by the given number",
        "1.0.0",
    ),
    FAMILY.cmd(
        "incrbyfloat",
        3,
        W | DENYOOM | FAST,
        ONE_KEY,
        incrbyfloat,
        "Increment the float value of a key by the given amount",
        "2.6.0",
    ),
    FAMILY.cmd(
        "lcs",
        -3,
        R,
        Keys {
            first: 1,
            last: 2,
            step: 1,
        },
        lcs,
        "Find longest common substring",
        "7.0.0",
    ),
];

/// MSET's keys: every other argument from the first.
const PAIRS: Keys = Keys {
    first: 1,
    last: -1,
    step: 2,
};

// ---------------------------------------------------------------------------
// Reading string values

/// A string value as stored: an integer keeps its `int` encoding until
/// someone needs its bytes.
#[derive(Clone, Copy)]
enum Str<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Str<'_> {
    fn to_vec(self) -> Vec<u8> {
        match self {
            Str::Int(n) => itoa::Buffer::new().format(n).as_bytes().to_vec(),
            Str::Bytes(b) => b.to_vec(),
        }
    }

    /// Calls `f` with the bytes a client would read.
    fn with_bytes<T>(self, f: impl FnOnce(&[u8]) -> T) -> T {
        match self {
            Str::Int(n) => f(itoa::Buffer::new().format(n).as_bytes()),
            Str::Bytes(b) => f(b),
        }
    }

    fn len(self) -> usize {
        self.with_bytes(<[u8]>::len)
    }

    /// The value as an integer, as Redis's getLongLongFromObject reads it.
    fn as_i64(self) -> Result<i64, CmdError> {
        match self {
            Str::Int(n) => Ok(n),
            Str::Bytes(b) => parse_i64_exact(b).ok_or(CmdError::NotInteger),
        }
    }
}

/// The string held by a value; WRONGTYPE for every other type.
fn as_str(v: ValueRef<'_>) -> Result<Str<'_>, CmdError> {
    match v {
        ValueRef::Int(n) => Ok(Str::Int(n)),
        ValueRef::Emb(b) => Ok(Str::Bytes(b)),
        ValueRef::Obj(Object::Raw(b)) => Ok(Str::Bytes(b)),
        ValueRef::Obj(_) => Err(CmdError::WrongType),
    }
}

/// Appends the string form of a value to the reply, or fails with WRONGTYPE.
pub fn reply_string(ctx: &mut Ctx<'_>, v: ValueRef<'_>) -> Result<(), CmdError> {
    match as_str(v)? {
        Str::Int(n) => ctx.reply.bulk_int(n),
        Str::Bytes(b) => ctx.reply.bulk(b),
    }
    Ok(())
}

/// A string made by the server rather than given by the client
/// (INCRBYFLOAT's result): Redis's createStringObject keeps it `embstr`
/// when short, `raw` otherwise, never `int`.
fn embstr_or_raw(bytes: Vec<u8>) -> Value {
    if bytes.len() <= EMBSTR_MAX {
        Value::Emb(bytes.into())
    } else {
        Value::raw(bytes)
    }
}

/// Redis's dbUnshareStringValue followed by an edit: the value becomes a
/// `raw` string (keeping the entry's TTL) and `f` changes it in place.
/// Returns the new length.
fn edit_raw(mut e: EntryMut<'_>, f: impl FnOnce(&mut Vec<u8>)) -> Result<usize, CmdError> {
    if let Some(Object::Raw(v)) = e.get_mut().object_mut() {
        f(v);
        return Ok(v.len());
    }
    let mut v = as_str(e.value())?.to_vec();
    f(&mut v);
    let len = v.len();
    e.replace_with(|old| old.rebuild(Value::raw(v), old.expiry()));
    Ok(len)
}

/// Redis's checkStringLength: APPEND and SETRANGE may not build a string
/// longer than proto-max-bulk-len.
fn check_length(ctx: &Ctx<'_>, len: usize, extra: usize) -> Result<(), CmdError> {
    let max = ctx.server.config.proto_max_bulk_len.load(Relaxed);
    match len.checked_add(extra) {
        Some(total) if total as u64 <= max => Ok(()),
        _ => Err(CmdError::Static(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        )),
    }
}

/// Redis's getGenericCommand: replies with the value of `key` or nil and
/// counts the keyspace hit or miss; WRONGTYPE (after counting the hit) for
/// other types. Returns whether the key exists.
fn reply_get(ctx: &mut Ctx<'_>, locked: &mut Locked<'_>, key: &[u8]) -> Result<bool, CmdError> {
    let Some(e) = locked.get(key) else {
        ctx.read_lookup(locked, key, false);
        ctx.reply.null();
        return Ok(false);
    };
    ctx.read_hit();
    reply_string(ctx, e.value())?;
    Ok(true)
}

// ---------------------------------------------------------------------------
// Expiry options (SET, GETEX, SETEX, PSETEX)

/// How an expiry argument is given.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expire {
    /// EX seconds
    Ex,
    /// PX milliseconds
    Px,
    /// EXAT unix seconds
    ExAt,
    /// PXAT unix milliseconds
    PxAt,
}

impl Expire {
    fn in_seconds(self) -> bool {
        matches!(self, Expire::Ex | Expire::ExAt)
    }

    fn relative(self) -> bool {
        matches!(self, Expire::Ex | Expire::Px)
    }

    /// The absolute expiry in unix milliseconds, with Redis's checks: the
    /// number must be positive and the result must not overflow. The error
    /// names the command (`'set'`, `'getex'` ...).
    fn at(self, arg: &[u8], now_ms: i64, command: &str) -> Result<i64, CmdError> {
        let n = int(arg)?;
        let invalid = || CmdError::Owned(format!("ERR invalid expire time in '{command}' command"));
        if n <= 0 {
            return Err(invalid());
        }
        let ms = if self.in_seconds() {
            n.checked_mul(1000).ok_or_else(invalid)?
        } else {
            n
        };
        if self.relative() {
            ms.checked_add(now_ms).ok_or_else(invalid)
        } else {
            Ok(ms)
        }
    }
}

/// The options of SET and GETEX, parsed as Redis's
/// parseExtendedStringArgumentsOrReply does: an option that conflicts
/// with one already seen is a syntax error, a repeated one is allowed (the
/// last expiry wins).
#[derive(Default, Debug)]
struct Options<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(Expire, &'a [u8])>,
}

/// Which command's options are parsed: SET takes NX/XX/GET/KEEPTTL,
/// GETEX takes PERSIST; both take the four expiry forms.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OptionsOf {
    Set,
    GetEx,
}

fn parse_options<'a>(args: &[&'a [u8]], of: OptionsOf) -> Result<Options<'a>, CmdError> {
    let set = of == OptionsOf::Set;
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let opt = args[i];
        let next = args.get(i + 1).copied();
        // An expiry form is accepted if no other form (nor KEEPTTL or
        // PERSIST) came before it.
        let expiry = |unit: Expire, o: &Options<'_>| {
            !o.keepttl && !o.persist && o.expire.is_none_or(|(u, _)| u == unit) && next.is_some()
        };
        let unit = if is(opt, "ex") {
            Some(Expire::Ex)
        } else if is(opt, "px") {
            Some(Expire::Px)
        } else if is(opt, "exat") {
            Some(Expire::ExAt)
        } else if is(opt, "pxat") {
            Some(Expire::PxAt)
        } else {
            None
        };
        match (unit, next) {
            (Some(unit), Some(arg)) if expiry(unit, &o) => {
                o.expire = Some((unit, arg));
                i += 1;
            }
            (Some(_), _) => return Err(CmdError::Syntax),
            (None, _) if set && is(opt, "nx") && !o.xx => o.nx = true,
            (None, _) if set && is(opt, "xx") && !o.nx => o.xx = true,
            (None, _) if set && is(opt, "get") => o.get = true,
            (None, _) if set && is(opt, "keepttl") && !o.persist && o.expire.is_none() => {
                o.keepttl = true
            }
            (None, _) if !set && is(opt, "persist") && !o.keepttl && o.expire.is_none() => {
                o.persist = true
            }
            (None, _) => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    Ok(o)
}

// ---------------------------------------------------------------------------
// GET, SET and their variants

/// GET key: bulk string, nil when missing, WRONGTYPE for other types.
fn get(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        reply_get(ctx, locked, argv[1]).map(drop)
    })
}

/// The replies of the SET family when the value is written or not.
#[derive(Clone, Copy)]
enum SetReply {
    /// +OK, or nil when NX/XX prevent the write (SET, SETEX, PSETEX).
    Ok,
    /// :1 or :0 (SETNX).
    Flag,
}

/// Redis's setGenericCommand, shared by SET, SETNX, SETEX and PSETEX:
/// checks the expiry, replies with the old value for GET, honours NX/XX,
/// and writes the value with the new expiry (or the old one for KEEPTTL).
fn set_generic(
    ctx: &mut Ctx<'_>,
    command: &str,
    key: &[u8],
    value: &[u8],
    o: &Options<'_>,
    reply: SetReply,
) -> Result<(), CmdError> {
    let now = ctx.now_ms;
    let expire_at = o
        .expire
        .map(|(unit, arg)| unit.at(arg, now, command))
        .transpose()?;
    ctx.with_keys(&[key], |ctx, locked| {
        if o.get {
            reply_get(ctx, locked, key)?;
        }
        let old_expiry = locked.get(key).map(|e| e.expiry());
        let found = old_expiry.is_some();
        if (o.nx && found) || (o.xx && !found) {
            if !o.get {
                match reply {
                    SetReply::Ok => ctx.reply.null(),
                    SetReply::Flag => ctx.reply.int(0),
                }
            }
            return Ok(());
        }
        let expiry = if o.keepttl {
            old_expiry.flatten()
        } else {
            expire_at
        };
        let old = locked.set(key, Value::string(value), expiry);
        ctx.modified(key);
        ctx.notify_new(&old, key);
        ctx.notify(events::STRING, "set", key);
        if expire_at.is_some() {
            ctx.notify(events::GENERIC, "expire", key);
        }
        if !o.get {
            match reply {
                SetReply::Ok => ctx.reply.ok(),
                SetReply::Flag => ctx.reply.int(1),
            }
        }
        Ok(())
    })
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms-ts | KEEPTTL]:
/// +OK; nil when NX/XX prevent the write; with GET the old value (or nil)
/// instead. Errors: syntax, invalid expire time, WRONGTYPE with GET.
fn set(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let o = parse_options(&argv[3..], OptionsOf::Set)?;
    set_generic(ctx, "set", argv[1], argv[2], &o, SetReply::Ok)
}

/// SETNX key value: :1 when the key was set, :0 when it already existed.
fn setnx(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let o = Options {
        nx: true,
        ..Options::default()
    };
    set_generic(ctx, "setnx", argv[1], argv[2], &o, SetReply::Flag)
}

/// SETEX key seconds value: +OK; invalid expire time unless seconds > 0.
fn setex(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let o = Options {
        expire: Some((Expire::Ex, argv[2])),
        ..Options::default()
    };
    set_generic(ctx, "setex", argv[1], argv[3], &o, SetReply::Ok)
}

/// PSETEX key milliseconds value: +OK; invalid expire time unless ms > 0.
fn psetex(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let o = Options {
        expire: Some((Expire::Px, argv[2])),
        ..Options::default()
    };
    set_generic(ctx, "psetex", argv[1], argv[3], &o, SetReply::Ok)
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST]: the value (or
/// nil), then the expiry is changed; an absolute time already past deletes
/// the key. The expiry is validated only once the key is found a string.
fn getex(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let o = parse_options(&argv[2..], OptionsOf::GetEx)?;
    let key = argv[1];
    ctx.with_keys(&[key], |ctx, locked| {
        let Some(e) = locked.get(key) else {
            ctx.read_lookup(locked, key, false);
            ctx.reply.null();
            return Ok(());
        };
        ctx.read_hit();
        let value = as_str(e.value())?;
        let had_expiry = e.expiry().is_some();
        let at = match o.expire {
            Some((unit, arg)) => Some((unit, unit.at(arg, ctx.now_ms, "getex")?)),
            None => None,
        };
        match value {
            Str::Int(n) => ctx.reply.bulk_int(n),
            Str::Bytes(b) => ctx.reply.bulk(b),
        }
        match at {
            Some((unit, at)) if !unit.relative() && at <= ctx.now_ms => {
                locked.remove(key);
                ctx.modified(key);
                ctx.notify(events::GENERIC, "del", key);
            }
            Some((_, at)) => {
                locked.set_expiry(key, Some(at));
                ctx.modified(key);
                ctx.notify(events::GENERIC, "expire", key);
            }
            None if o.persist && had_expiry => {
                locked.set_expiry(key, None);
                ctx.modified(key);
                ctx.notify(events::GENERIC, "persist", key);
            }
            None => {}
        }
        Ok(())
    })
}

/// GETDEL key: the value (or nil), and the key is deleted.
fn getdel(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let key = argv[1];
    ctx.with_keys(&[key], |ctx, locked| {
        if reply_get(ctx, locked, key)? {
            locked.remove(key);
            ctx.modified(key);
            ctx.notify(events::GENERIC, "del", key);
        }
        Ok(())
    })
}

/// GETSET key value: the old value (or nil); the new value replaces it
/// and any TTL is dropped.
fn getset(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let key = argv[1];
    ctx.with_keys(&[key], |ctx, locked| {
        reply_get(ctx, locked, key)?;
        let old = locked.set(key, Value::string(argv[2]), None);
        ctx.modified(key);
        ctx.notify_new(&old, key);
        ctx.notify(events::STRING, "set", key);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Multi-key commands

/// MGET key [key ...]: an array with each value, nil for missing keys and
/// for keys of other types.
fn mget(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let keys = &argv[1..];
    ctx.with_keys(keys, |ctx, locked| {
        ctx.reply.array(keys.len());
        for key in keys {
            let Some(e) = locked.get(key) else {
                ctx.read_lookup(locked, key, false);
                ctx.reply.null();
                continue;
            };
            ctx.read_hit();
            if reply_string(ctx, e.value()).is_err() {
                ctx.reply.null();
            }
        }
        Ok(())
    })
}

/// Redis's msetGenericCommand: every pair is written under one lock of
/// all the keys, so no client sees half of it. With `nx` nothing is
/// written if any key exists.
fn mset_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], nx: bool) -> Result<(), CmdError> {
    if argv.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity(
            if nx { "msetnx" } else { "mset" }.into(),
        ));
    }
    let keys: Vec<&[u8]> = argv[1..].iter().step_by(2).copied().collect();
    ctx.with_keys(&keys, |ctx, locked| {
        if nx && keys.iter().any(|k| locked.get(k).is_some()) {
            ctx.reply.int(0);
            return Ok(());
        }
        for pair in argv[1..].chunks_exact(2) {
            let old = locked.set(pair[0], Value::string(pair[1]), None);
            ctx.modified(pair[0]);
            ctx.notify_new(&old, pair[0]);
            ctx.notify(events::STRING, "set", pair[0]);
        }
        if nx {
            ctx.reply.int(1);
        } else {
            ctx.reply.ok();
        }
        Ok(())
    })
}

/// MSET key value [key value ...]: +OK.
fn mset(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    mset_generic(ctx, argv, false)
}

/// MSETNX key value [key value ...]: :1 when all keys were set, :0 (and
/// nothing set) when any of them existed.
fn msetnx(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    mset_generic(ctx, argv, true)
}

// ---------------------------------------------------------------------------
// Lengths and ranges

/// APPEND key value: the new length. A new key is stored like SET stores
/// it; an existing value becomes `raw` and grows in place, keeping its TTL.
fn append(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (key, tail) = (argv[1], argv[2]);
    ctx.with_keys(&[key], |ctx, locked| {
        let Some(e) = locked.get(key) else {
            locked.set(key, Value::string(tail), None);
            ctx.modified(key);
            ctx.notify(events::NEW, "new", key);
            ctx.notify(events::STRING, "append", key);
            ctx.reply.int(tail.len() as i64);
            return Ok(());
        };
        let cur_len = as_str(e.value())?.len();
        check_length(ctx, cur_len, tail.len())?;
        let len = edit_raw(e, |v| v.extend_from_slice(tail))?;
        ctx.modified(key);
        ctx.notify(events::STRING, "append", key);
        ctx.reply.int(len as i64);
        Ok(())
    })
}

/// STRLEN key: the length of the value, 0 when missing.
fn strlen(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let len = match locked.get(argv[1]) {
            Some(e) => {
                ctx.read_hit();
                as_str(e.value())?.len()
            }
            None => {
                ctx.read_lookup(locked, argv[1], false);
                0
            }
        };
        ctx.reply.int(len as i64);
        Ok(())
    })
}

/// The bytes GETRANGE returns for inclusive `start..=end`, with Redis's
/// rules: negative indexes count from the end, both are clamped to the
/// string, and two negative indexes out of order give nothing.
fn substring(s: &[u8], start: i64, end: i64) -> &[u8] {
    if start < 0 && end < 0 && start > end {
        return b"";
    }
    let len = s.len() as i64;
    let start = if start < 0 {
        len.saturating_add(start).max(0)
    } else {
        start
    };
    let end = if end < 0 {
        len.saturating_add(end).max(0)
    } else {
        end
    };
    let end = end.min(len - 1);
    if start > end || len == 0 {
        return b"";
    }
    s.get(start as usize..=end as usize).unwrap_or(b"")
}

/// GETRANGE key start end (and SUBSTR): the substring, "" when missing.
fn getrange(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let start = int(argv[2])?;
    let end = int(argv[3])?;
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let Some(e) = locked.get(argv[1]) else {
            ctx.read_lookup(locked, argv[1], false);
            ctx.reply.bulk(b"");
            return Ok(());
        };
        ctx.read_hit();
        as_str(e.value())?.with_bytes(|s| ctx.reply.bulk(substring(s, start, end)));
        Ok(())
    })
}

/// SETRANGE key offset value: the new length. The string is padded with
/// zero bytes up to `offset`; an empty value changes nothing (and creates
/// no key). Errors: offset out of range, string exceeds proto-max-bulk-len.
fn setrange(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (key, patch) = (argv[1], argv[3]);
    let offset = int(argv[2])?;
    let offset =
        usize::try_from(offset).map_err(|_| CmdError::Static("ERR offset is out of range"))?;
    ctx.with_keys(&[key], |ctx, locked| {
        let Some(e) = locked.get(key) else {
            if patch.is_empty() {
                ctx.reply.int(0);
                return Ok(());
            }
            check_length(ctx, offset, patch.len())?;
            let mut v = vec![0u8; offset];
            v.extend_from_slice(patch);
            let len = v.len();
            locked.set(key, Value::raw(v), None);
            ctx.modified(key);
            ctx.notify(events::NEW, "new", key);
            ctx.notify(events::STRING, "setrange", key);
            ctx.reply.int(len as i64);
            return Ok(());
        };
        let cur_len = as_str(e.value())?.len();
        if patch.is_empty() {
            ctx.reply.int(cur_len as i64);
            return Ok(());
        }
        check_length(ctx, offset, patch.len())?;
        let len = edit_raw(e, |v| {
            let end = offset + patch.len();
            if v.len() < end {
                v.resize(end, 0);
            }
            v[offset..end].copy_from_slice(patch);
        })?;
        ctx.modified(key);
        ctx.notify(events::STRING, "setrange", key);
        ctx.reply.int(len as i64);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Counters

/// Redis's incrDecrCommand, shared by INCR, DECR, INCRBY and DECRBY: the
/// value must be an integer and the result must fit in an i64. The result
/// is stored as an integer, keeping the key's TTL.
fn incr_generic(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> Result<(), CmdError> {
    ctx.with_keys(&[key], |ctx, locked| {
        let n = match locked.get(key) {
            Some(e) => {
                let n = as_str(e.value())?
                    .as_i64()?
                    .checked_add(by)
                    .ok_or(CmdError::Overflow)?;
                e.replace_with(|old| old.rebuild(Value::Int(n), old.expiry()));
                n
            }
            None => {
                locked.set(key, Value::Int(by), None);
                ctx.notify(events::NEW, "new", key);
                by
            }
        };
        ctx.modified(key);
        ctx.notify(events::STRING, "incrby", key);
        ctx.reply.int(n);
        Ok(())
    })
}

/// INCR key: the new value. Errors: not an integer, overflow, WRONGTYPE.
fn incr(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    incr_generic(ctx, argv[1], 1)
}

/// DECR key: the new value. Errors as INCR.
fn decr(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    incr_generic(ctx, argv[1], -1)
}

/// INCRBY key increment: the new value. Errors as INCR.
fn incrby(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let by = int(argv[2])?;
    incr_generic(ctx, argv[1], by)
}

/// DECRBY key decrement: the new value. Errors as INCR, and "decrement
/// would overflow" for a decrement of i64::MIN, which cannot be negated.
fn decrby(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let by = int(argv[2])?;
    let by = by
        .checked_neg()
        .ok_or(CmdError::Static("ERR decrement would overflow"))?;
    incr_generic(ctx, argv[1], by)
}

/// INCRBYFLOAT key increment: the new value as a bulk string, computed in
/// long double and printed as Redis prints it; the TTL is kept. Errors:
/// not a valid float (value or increment), NaN or Infinity, WRONGTYPE.
fn incrbyfloat(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let key = argv[1];
    ctx.with_keys(&[key], |ctx, locked| {
        let sum = match locked.get(key) {
            Some(e) => {
                let sum = as_str(e.value())?.with_bytes(|cur| ldouble::incr(Some(cur), argv[2]))?;
                let value = embstr_or_raw(sum.clone());
                e.replace_with(|old| old.rebuild(value, old.expiry()));
                sum
            }
            None => {
                let sum = ldouble::incr(None, argv[2])?;
                locked.set(key, embstr_or_raw(sum.clone()), None);
                ctx.notify(events::NEW, "new", key);
                sum
            }
        };
        ctx.modified(key);
        ctx.notify(events::STRING, "incrbyfloat", key);
        ctx.reply.bulk(&sum);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// LCS

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest
/// common subsequence of two strings (missing keys are empty). Replies:
/// the subsequence; with LEN its length; with IDX a map {matches: [[[a0,
/// a1], [b0, b1], (len)] ...], len: n}. The strings are copied out so the
/// quadratic work runs without holding the keys' shards.
fn lcs(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (a, b) = ctx.with_keys(&argv[1..3], |ctx, locked| {
        // None for a key of another type.
        let mut read = |key: &[u8]| match locked.get(key) {
            Some(e) => {
                ctx.read_hit();
                as_str(e.value()).ok().map(Str::to_vec)
            }
            None => {
                ctx.read_lookup(locked, key, false);
                Some(Vec::new())
            }
        };
        let (a, b) = (read(argv[1]), read(argv[2]));
        a.zip(b).ok_or(CmdError::Static(
            "ERR The specified keys must contain string values",
        ))
    })?;
    let (mut idx, mut len, mut withmatchlen, mut min_len) = (false, false, false, 0u64);
    let mut i = 3;
    while i < argv.len() {
        let more = i + 1 < argv.len();
        if is(argv[i], "idx") {
            idx = true;
        } else if is(argv[i], "len") {
            len = true;
        } else if is(argv[i], "withmatchlen") {
            withmatchlen = true;
        } else if is(argv[i], "minmatchlen") && more {
            min_len = int(argv[i + 1])?.max(0) as u64;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if idx && len {
        return Err(CmdError::Static(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let want = if idx {
        lcs::Want::Ranges { min_len }
    } else if len {
        lcs::Want::Len
    } else {
        lcs::Want::String
    };
    let max_table = ctx.server.config.proto_max_bulk_len.load(Relaxed);
    let result = lcs::lcs(&a, &b, want, max_table)?;
    match want {
        lcs::Want::Len => ctx.reply.int(i64::from(result.len)),
        lcs::Want::String => ctx.reply.bulk(&result.string),
        lcs::Want::Ranges { .. } => {
            ctx.reply.map(2);
            ctx.reply.bulk(b"matches");
            ctx.reply.array(result.ranges.len());
            for r in &result.ranges {
                ctx.reply.array(if withmatchlen { 3 } else { 2 });
                for (from, to) in [r.a, r.b] {
                    ctx.reply.array(2);
                    ctx.reply.int(i64::from(from));
                    ctx.reply.int(i64::from(to));
                }
                if withmatchlen {
                    ctx.reply.int(i64::from(r.len));
                }
            }
            ctx.reply.bulk(b"len");
            ctx.reply.int(i64::from(result.len));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&'static str], of: OptionsOf) -> Result<Options<'static>, CmdError> {
        let args: Vec<&'static [u8]> = args.iter().map(|a| a.as_bytes()).collect();
        parse_options(&args, of)
    }

    #[test]
    fn option_conflicts_as_redis() {
        use OptionsOf::*;
        for ok in [
            &["nx", "get", "ex", "1"][..],
            &["EX", "1", "ex", "2"],
            &["keepttl", "xx"],
            &["pxat", "5"],
        ] {
            assert!(opts(ok, Set).is_ok(), "{ok:?}");
        }
        for bad in [
            &["nx", "xx"][..],
            &["ex", "1", "px", "1"],
            &["keepttl", "ex", "1"],
            &["ex"],
            &["persist"],
            &["exat", "1", "keepttl"],
            &["foo"],
        ] {
            assert_eq!(opts(bad, Set).unwrap_err(), CmdError::Syntax, "{bad:?}");
        }
        assert!(opts(&["persist", "persist"], GetEx).unwrap().persist);
        assert_eq!(
            opts(&["ex", "1", "ex", "2"], GetEx).unwrap().expire,
            Some((Expire::Ex, &b"2"[..]))
        );
        for bad in [
            &["get"][..],
            &["nx"],
            &["keepttl"],
            &["persist", "ex", "1"],
            &["px", "1", "persist"],
        ] {
            assert_eq!(opts(bad, GetEx).unwrap_err(), CmdError::Syntax, "{bad:?}");
        }
    }

    #[test]
    fn expire_times() {
        let now = 1_700_000_000_000;
        assert_eq!(Expire::Ex.at(b"10", now, "set"), Ok(now + 10_000));
        assert_eq!(
            Expire::PxAt.at(b"9223372036854775807", now, "set"),
            Ok(i64::MAX)
        );
        assert_eq!(Expire::Ex.at(b"x", now, "set"), Err(CmdError::NotInteger));
        let invalid = Err(CmdError::Owned(
            "ERR invalid expire time in 'getex' command".into(),
        ));
        for (unit, arg) in [
            (Expire::Ex, "0"),
            (Expire::Px, "-1"),
            (Expire::ExAt, "9223372036854775807"),
            (Expire::Px, "9223372036854775807"),
            (Expire::Ex, "9223372036854775"),
        ] {
            assert_eq!(
                unit.at(arg.as_bytes(), now, "getex"),
                invalid,
                "{unit:?} {arg}"
            );
        }
    }

    #[test]
    fn substrings() {
        let s = b"This is a string";
        assert_eq!(substring(s, 0, 3), b"This");
        assert_eq!(substring(s, -3, -1), b"ing");
        assert_eq!(substring(s, 5, 3), b"");
        assert_eq!(substring(s, -1, -5), b"");
        assert_eq!(substring(s, i64::MIN, i64::MAX), s);
        assert_eq!(substring(s, 10, i64::MIN), b"");
        assert_eq!(substring(b"", 0, -1), b"");
        assert_eq!(substring(b"", i64::MIN, i64::MAX), b"");
    }
}
