//! Hash commands: Redis 7.0's hash family (HSET ... HSCAN).
//!
//! The value type and its `listpack`/`hashtable` encodings live in
//! store::hash; this module parses arguments, finds or creates the hash,
//! and writes replies. Reads count keyspace hits and misses as Redis's
//! lookupKeyRead does; a write that empties a hash deletes the key.

use std::sync::atomic::Ordering::Relaxed;

use super::args::{int, is, parse_i64_exact};
use super::strings::ldouble;
use super::{acl, flags, CmdError, Command, Ctx, Keys};
use crate::pubsub::events;
use crate::store::hash::{Hash, Limits};
use crate::store::{Object, Value};

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    handler: super::Handler,
    summary: &'static str,
    since: &'static str,
) -> Command {
    Command {
        name,
        arity,
        flags,
        keys: Keys {
            first: 1,
            last: 1,
            step: 1,
        },
        acl: acl::HASH,
        handler,
        subcommands: &[],
        group: "hash",
        summary,
        since,
    }
}

const W: u32 = flags::WRITE;
const R: u32 = flags::READONLY;
const DENYOOM: u32 = flags::DENYOOM;
const FAST: u32 = flags::FAST;

pub const COMMANDS: &[Command] = &[
    cmd(
        "hset",
        -4,
        W | DENYOOM | FAST,
        hset,
        "Set the string value of a hash field",
        "2.0.0",
    ),
    cmd(
        "hsetnx",
        4,
        W | DENYOOM | FAST,
        hsetnx,
        "Set the value of a hash field, only if the field does not exist",
        "2.0.0",
    ),
    cmd(
        "hget",
        3,
        R | FAST,
        hget,
        "Get the value of a hash field",
        "2.0.0",
    ),
    cmd(
        "hmget",
        -3,
        R | FAST,
        hmget,
        "Get the values of all the given hash fields",
        "2.0.0",
    ),
    cmd(
        "hmset",
        -4,
        W | DENYOOM | FAST,
        hmset,
        "Set multiple hash fields to multiple values",
        "2.0.0",
    ),
    cmd(
        "hdel",
        -3,
        W | FAST,
        hdel,
        "Delete one or more hash fields",
        "2.0.0",
    ),
    cmd(
        "hlen",
        2,
        R | FAST,
        hlen,
        "Get the number of fields in a hash",
        "2.0.0",
    ),
    cmd(
        "hstrlen",
        3,
        R | FAST,
        hstrlen,
        "Get the length of the value of a hash field",
        "3.2.0",
    ),
    cmd(
        "hexists",
        3,
        R | FAST,
        hexists,
        "Determine if a hash field exists",
        "2.0.0",
    ),
    cmd(
        "hkeys",
        2,
        R,
        hkeys,
        "Get all the fields in a hash",
        "2.0.0",
    ),
    cmd(
        "hvals",
        2,
        R,
        hvals,
        "Get all the values in a hash",
        "2.0.0",
    ),
    cmd(
        "hgetall",
        2,
        R,
        hgetall,
        "Get all the fields and values in a hash",
        "2.0.0",
    ),
    cmd(
        "hincrby",
        4,
        W | DENYOOM | FAST,
        hincrby,
        "Increment the integer value of a hash field by the given number",
        "2.0.0",
    ),
    cmd(
        "hincrbyfloat",
        4,
        W | DENYOOM | FAST,
        hincrbyfloat,
        "Increment the float value of a hash field by the given amount",
        "2.6.0",
    ),
    cmd(
        "hrandfield",
        -2,
        R,
        hrandfield,
        "Get one or multiple random fields from a hash",
        "6.2.0",
    ),
    cmd(
        "hscan",
        -3,
        R,
        hscan,
        "Incrementally iterate hash fields and associated values",
        "2.8.0",
    ),
];

fn limits(ctx: &Ctx<'_>) -> Limits {
    let c = &ctx.server.config;
    Limits {
        entries: usize::try_from(c.hash_max_listpack_entries.load(Relaxed)).unwrap_or(usize::MAX),
        value: usize::try_from(c.hash_max_listpack_value.load(Relaxed)).unwrap_or(usize::MAX),
    }
}

/// Runs `f` on the hash at `key` (None when there is no key), counting
/// the keyspace hit or miss (see Ctx::read_lookup); WRONGTYPE for other
/// types.
fn read<'a, T>(
    ctx: &mut Ctx<'a>,
    key: &[u8],
    f: impl FnOnce(&mut Ctx<'a>, Option<&mut Hash>) -> Result<T, CmdError>,
) -> Result<T, CmdError> {
    let mut locked = ctx.lock(&[key]);
    let result = match locked.get(key) {
        None => {
            ctx.read_lookup(&mut locked, key, false);
            f(ctx, None)
        }
        Some(mut e) => {
            ctx.read_hit();
            match e.get_mut().object_mut() {
                Some(Object::Hash(h)) => f(ctx, Some(h)),
                _ => Err(CmdError::WrongType),
            }
        }
    };
    ctx.finish(locked);
    result
}

/// The write path shared by every hash writer: finds the hash at `key`
/// (creating an empty one when `create` and the key is missing; `f` gets
/// None otherwise), runs `f`, which returns its result and whether it
/// changed the hash, then stores a new hash, deletes an emptied one, and
/// calls the write hook. A change sends the notifications Redis sends:
/// `new` for a created key, `event`, then `del` for a deleted one.
fn write<T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    create: bool,
    event: &str,
    f: impl FnOnce(Option<&mut Hash>) -> Result<(T, bool), CmdError>,
) -> Result<T, CmdError> {
    let mut locked = ctx.lock(&[key]);
    let (mut created, mut deleted) = (false, false);
    let result = match locked.get(key) {
        Some(mut e) => match e.get_mut().object_mut() {
            Some(Object::Hash(h)) => match f(Some(&mut *h)) {
                Ok((out, _)) if h.is_empty() => {
                    locked.remove(key);
                    deleted = true;
                    Ok((out, true))
                }
                other => other,
            },
            _ => Err(CmdError::WrongType),
        },
        None if create => {
            let mut h = Hash::new();
            f(Some(&mut h)).inspect(|_| {
                if !h.is_empty() {
                    locked.set(key, Value::Obj(Box::new(Object::Hash(h))), None);
                    created = true;
                }
            })
        }
        None => f(None),
    };
    ctx.finish(locked);
    let (out, changed) = result?;
    if changed {
        ctx.modified(key);
        if created {
            ctx.notify(events::NEW, "new", key);
        }
        ctx.notify(events::HASH, event, key);
        if deleted {
            ctx.notify(events::GENERIC, "del", key);
        }
    }
    Ok(out)
}

/// HSET key field value [field value ...]: the number of fields added.
fn hset(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let added = hset_generic(ctx, argv)?;
    ctx.reply.int(added as i64);
    Ok(())
}

/// HMSET key field value [field value ...]: +OK.
fn hmset(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    hset_generic(ctx, argv)?;
    ctx.reply.ok();
    Ok(())
}

/// The body of HSET and HMSET: an odd number of field/value arguments is
/// an arity error; long arguments convert the hash before any write.
fn hset_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<usize, CmdError> {
    if argv.len() % 2 == 1 {
        let name = String::from_utf8_lossy(argv[0]).to_lowercase();
        return Err(CmdError::WrongArity(name));
    }
    let limits = limits(ctx);
    write(ctx, argv[1], true, "hset", |h| {
        let h = h.ok_or(CmdError::WrongType)?;
        h.convert_for(&argv[2..], limits);
        let added = argv[2..]
            .chunks_exact(2)
            .filter(|p| h.set(p[0], p[1], limits))
            .count();
        Ok((added, true))
    })
}

/// HSETNX key field value: 1 when the field was set, 0 when it existed.
fn hsetnx(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let limits = limits(ctx);
    let set = write(ctx, argv[1], true, "hset", |h| {
        let h = h.ok_or(CmdError::WrongType)?;
        // Unlike HSET, long arguments convert only when the field is set.
        if h.get(argv[2]).is_some() {
            return Ok((false, false));
        }
        h.set(argv[2], argv[3], limits);
        Ok((true, true))
    })?;
    ctx.reply.int(set as i64);
    Ok(())
}

/// HGET key field: the value, or nil.
fn hget(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    read(ctx, argv[1], |ctx, h| {
        match h.and_then(|h| h.get(argv[2])) {
            Some(v) => ctx.reply.bulk(v),
            None => ctx.reply.null(),
        }
        Ok(())
    })
}

/// HMGET key field [field ...]: an array of values, nil for missing fields
/// (all nil when the key is missing).
fn hmget(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    read(ctx, argv[1], |ctx, mut h| {
        ctx.reply.array(argv.len() - 2);
        for field in &argv[2..] {
            match h.as_deref_mut().and_then(|h| h.get(field)) {
                Some(v) => ctx.reply.bulk(v),
                None => ctx.reply.null(),
            }
        }
        Ok(())
    })
}

/// HDEL key field [field ...]: the number of fields removed; the key goes
/// when its last field does.
fn hdel(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let n = write(ctx, argv[1], false, "hdel", |h| {
        let Some(h) = h else {
            return Ok((0, false));
        };
        let mut n = 0;
        for field in &argv[2..] {
            if h.remove(field) {
                n += 1;
                if h.is_empty() {
                    break;
                }
            }
        }
        Ok((n, n > 0))
    })?;
    ctx.reply.int(n);
    Ok(())
}

/// HLEN key: the number of fields, 0 for a missing key.
fn hlen(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    read(ctx, argv[1], |ctx, h| {
        ctx.reply.int(h.map_or(0, |h| h.len()) as i64);
        Ok(())
    })
}

/// HSTRLEN key field: the length of the value, 0 when missing.
fn hstrlen(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    read(ctx, argv[1], |ctx, h| {
        let len = h.and_then(|h| h.get(argv[2])).map_or(0, |v| v.len());
        ctx.reply.int(len as i64);
        Ok(())
    })
}

/// HEXISTS key field: 1 or 0.
fn hexists(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    read(ctx, argv[1], |ctx, h| {
        let found = h.and_then(|h| h.get(argv[2])).is_some();
        ctx.reply.int(found as i64);
        Ok(())
    })
}

/// What HKEYS, HVALS and HGETALL return.
#[derive(Clone, Copy, PartialEq)]
enum Parts {
    Fields,
    Values,
    Both,
}

/// HKEYS key: the fields, an empty array for a missing key.
fn hkeys(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    hgetall_generic(ctx, argv[1], Parts::Fields)
}

/// HVALS key: the values, an empty array for a missing key.
fn hvals(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    hgetall_generic(ctx, argv[1], Parts::Values)
}

/// HGETALL key: a map of fields to values (a flat array in RESP2), empty
/// for a missing key.
fn hgetall(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    hgetall_generic(ctx, argv[1], Parts::Both)
}

/// Redis's genericHgetallCommand, in the hash's own order.
fn hgetall_generic(ctx: &mut Ctx<'_>, key: &[u8], parts: Parts) -> Result<(), CmdError> {
    read(ctx, key, |ctx, h| {
        let len = h.as_ref().map_or(0, |h| h.len());
        if parts == Parts::Both {
            ctx.reply.map(len);
        } else {
            ctx.reply.array(len);
        }
        if let Some(h) = h {
            let reply = &mut *ctx.reply;
            h.for_each(|f, v| {
                if parts != Parts::Values {
                    reply.bulk(f);
                }
                if parts != Parts::Fields {
                    reply.bulk(v);
                }
            });
        }
        Ok(())
    })
}

/// HINCRBY key field increment: the new value. Errors: the increment is
/// not an integer, "hash value is not an integer", overflow.
fn hincrby(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let by = int(argv[3])?;
    let limits = limits(ctx);
    let n = write(ctx, argv[1], true, "hincrby", |h| {
        let h = h.ok_or(CmdError::WrongType)?;
        let cur = match h.get(argv[2]) {
            Some(v) => {
                parse_i64_exact(v).ok_or(CmdError::Static("ERR hash value is not an integer"))?
            }
            None => 0,
        };
        let n = cur.checked_add(by).ok_or(CmdError::Overflow)?;
        h.set(argv[2], itoa::Buffer::new().format(n).as_bytes(), limits);
        Ok((n, true))
    })?;
    ctx.reply.int(n);
    Ok(())
}

/// HINCRBYFLOAT key field increment: the new value as a bulk string,
/// computed in long double and printed as INCRBYFLOAT prints it. Errors:
/// the increment is not a float or is NaN/Infinity, "hash value is not a
/// float", a NaN or infinite result.
fn hincrbyfloat(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    // Checks the increment alone first, as Redis does before the lookup.
    match ldouble::incr(None, argv[3]) {
        Err(CmdError::NotFloat) => return Err(CmdError::NotFloat),
        Err(_) => return Err(CmdError::Static("ERR value is NaN or Infinity")),
        Ok(_) => {}
    }
    let limits = limits(ctx);
    let sum = write(ctx, argv[1], true, "hincrbyfloat", |h| {
        let h = h.ok_or(CmdError::WrongType)?;
        let cur = h.get(argv[2]).map(<[u8]>::to_vec);
        let sum = ldouble::incr(cur.as_deref(), argv[3]).map_err(|e| match e {
            CmdError::NotFloat => CmdError::Static("ERR hash value is not a float"),
            other => other,
        })?;
        h.set(argv[2], &sum, limits);
        Ok((sum, true))
    })?;
    ctx.reply.bulk(&sum);
    Ok(())
}

/// HRANDFIELD key [count [WITHVALUES]]: without count a random field or
/// nil; with a positive count up to that many distinct fields, with a
/// negative one exactly -count fields that may repeat. WITHVALUES adds
/// the values (flat in RESP2, [field, value] pairs in RESP3).
fn hrandfield(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if argv.len() == 2 {
        return read(ctx, argv[1], |ctx, h| {
            match h.and_then(|h| h.random(&mut rand::thread_rng())) {
                Some((f, _)) => ctx.reply.bulk(f),
                None => ctx.reply.null(),
            }
            Ok(())
        });
    }
    let count = int(argv[2])?;
    if count == i64::MIN {
        return Err(CmdError::Static(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if argv.len() > 4 || (argv.len() == 4 && !is(argv[3], "withvalues")) {
        return Err(CmdError::Syntax);
    }
    let withvalues = argv.len() == 4;
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(CmdError::Static("ERR value is out of range"));
    }
    read(ctx, argv[1], |ctx, h| {
        let h = match h {
            Some(h) if count != 0 => h,
            _ => {
                ctx.reply.array(0);
                return Ok(());
            }
        };
        let resp3 = ctx.reply.is_resp3();
        let pair = |reply: &mut ferrokv_resp::Reply, f: &[u8], v: &[u8]| {
            if withvalues && resp3 {
                reply.array(2);
            }
            reply.bulk(f);
            if withvalues {
                reply.bulk(v);
            }
        };
        let header = |reply: &mut ferrokv_resp::Reply, n: u64| {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            reply.array(if withvalues && !resp3 { n * 2 } else { n });
        };
        let rng = &mut rand::thread_rng();
        // Repetition allowed (a negative count, or a count of one).
        if count < 0 || count == 1 {
            let n = count.unsigned_abs();
            header(ctx.reply, n);
            for _ in 0..n {
                if let Some((f, v)) = h.random(rng) {
                    pair(ctx.reply, f, v);
                }
            }
            return Ok(());
        }
        let size = h.len();
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        header(ctx.reply, count.min(size) as u64);
        if count >= size {
            let reply = &mut *ctx.reply;
            h.for_each(|f, v| pair(reply, f, v));
            return Ok(());
        }
        let mut all = h.to_pairs();
        if count * 3 > size {
            // Few to leave out: drop random pairs until count remain.
            while all.len() > count {
                let i = rand::Rng::gen_range(rng, 0..all.len());
                all.swap_remove(i);
            }
        } else {
            // Few to pick: a partial shuffle of the first count.
            for i in 0..count {
                let j = rand::Rng::gen_range(rng, i..all.len());
                all.swap(i, j);
            }
            all.truncate(count);
        }
        for (f, v) in &all {
            pair(ctx.reply, f, v);
        }
        Ok(())
    })
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]: [next cursor, [field,
/// value ...]]. A `listpack` hash comes back whole with cursor 0; a
/// `hashtable` is walked with a reverse-binary cursor, so every field
/// present for the whole iteration is returned at least once.
fn hscan(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let cursor = super::keys::parse_cursor(argv[2])?;
    read(ctx, argv[1], |ctx, h| {
        let Some(h) = h else {
            ctx.reply.array(2);
            ctx.reply.bulk(b"0");
            ctx.reply.array(0);
            return Ok(());
        };
        let mut count = 10usize;
        let mut pattern = None;
        let mut i = 3;
        while i < argv.len() {
            let more = argv.len() - i >= 2;
            if more && is(argv[i], "count") {
                let n = int(argv[i + 1])?;
                if n < 1 {
                    return Err(CmdError::Syntax);
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
            } else if more && is(argv[i], "match") {
                pattern = Some(argv[i + 1]).filter(|p| *p != b"*");
            } else {
                return Err(CmdError::Syntax);
            }
            i += 2;
        }
        let mut items = Vec::new();
        let next = h.scan(cursor, count, |f, v| {
            if pattern.is_none_or(|p| crate::glob::matches(p, f, false)) {
                items.push((f.to_vec(), v.to_vec()));
            }
        });
        ctx.reply.array(2);
        ctx.reply.bulk(itoa::Buffer::new().format(next).as_bytes());
        ctx.reply.array(items.len() * 2);
        for (f, v) in &items {
            ctx.reply.bulk(f);
            ctx.reply.bulk(v);
        }
        Ok(())
    })
}
