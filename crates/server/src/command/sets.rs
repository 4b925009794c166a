//! Set commands: Redis 7.0's set family (SADD ... SSCAN).
//!
//! Values are `Object::Set` (see store::set for the `intset` and
//! `hashtable` encodings). Like Redis, a set that becomes empty is deleted,
//! results that are stored (SINTERSTORE and friends) are built member by
//! member from an empty intset, so they get the encoding Redis would give
//! them, and multi-key results are replied as RESP3 sets. Multi-key
//! commands lock every key once and then look the sets up one at a time.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

use rand::seq::SliceRandom;

use super::args::{int, is, parse_i64_exact};
use super::keys::parse_cursor;
use super::{acl, flags, CmdError, Command, Ctx, Family, Keys};
use crate::glob;
use crate::pubsub::events;
use crate::store::set::{Member, Owned, Set};
use crate::store::{Locked, Object, Value};
use ferrokv_resp::Reply;

const FAMILY: Family = Family {
    acl: acl::SET,
    group: "set",
};

const ONE_KEY: Keys = Keys {
    first: 1,
    last: 1,
    step: 1,
};
const ALL_KEYS: Keys = Keys {
    first: 1,
    last: -1,
    step: 1,
};
const TWO_KEYS: Keys = Keys {
    first: 1,
    last: 2,
    step: 1,
};

const W: u32 = flags::WRITE;
const R: u32 = flags::READONLY;
const DENYOOM: u32 = flags::DENYOOM;
const FAST: u32 = flags::FAST;

pub const COMMANDS: &[Command] = &[
    FAMILY.cmd(
        "sadd",
        -3,
        W | DENYOOM | FAST,
        ONE_KEY,
        sadd,
        "Add one or more members to a set",
        "1.0.0",
    ),
    FAMILY.cmd(
        "srem",
        -3,
        W | FAST,
        ONE_KEY,
        srem,
        "Remove one or more members from a set",
        "1.0.0",
    ),
    FAMILY.cmd(
        "scard",
        2,
        R | FAST,
        ONE_KEY,
        scard,
        "Get the number of members in a set",
        "1.0.0",
    ),
    FAMILY.cmd(
        "sismember",
        3,
        R | FAST,
        ONE_KEY,
        sismember,
        "Determine if a given value is a member of a set",
        "1.0.0",
    ),
    FAMILY.cmd(
        "smismember",
        -3,
        R | FAST,
        ONE_KEY,
        smismember,
        "Returns the membership associated with the given elements for a set",
        "6.2.0",
    ),
    FAMILY.cmd(
        "smembers",
        2,
        R,
        ONE_KEY,
        smembers,
        "Get all the members in a set",
        "1.0.0",
    ),
    FAMILY.cmd(
        "srandmember",
        -2,
        R,
        ONE_KEY,
        srandmember,
        "Get one or multiple random members from a set",
        "1.0.0",
    ),
    FAMILY.cmd(
        "spop",
        -2,
        W | FAST,
        ONE_KEY,
        spop,
        "Remove and return one or multiple random members from a set",
        "1.0.0",
    ),
    FAMILY.cmd(
        "smove",
        4,
        W | FAST,
        TWO_KEYS,
        smove,
        "Move a member from one set to another",
        "1.0.0",
    ),
    FAMILY.cmd(
        "sinter",
        -2,
        R,
        ALL_KEYS,
        sinter,
        "Intersect multiple sets",
        "1.0.0",
    ),
    FAMILY.cmd(
        "sintercard",
        -3,
        R | flags::MOVABLE_KEYS,
        super::NO_KEYS,
        sintercard,
        "Intersect multiple sets and return the cardinality of the result",
        "7.0.0",
    ),
    FAMILY.cmd(
        "sinterstore",
        -3,
        W | DENYOOM,
        ALL_KEYS,
        sinterstore,
        "Intersect multiple sets and store the resulting set in a key",
        "1.0.0",
    ),
    FAMILY.cmd(
        "sunion",
        -2,
        R,
        ALL_KEYS,
        sunion,
        "Add multiple sets",
        "1.0.0",
    ),
    FAMILY.cmd(
        "sunionstore",
        -3,
        W | DENYOOM,
        ALL_KEYS,
        sunionstore,
        "Add multiple sets and store the resulting set in a key",
        "1.0.0",
    ),
    FAMILY.cmd(
        "sdiff",
        -2,
        R,
        ALL_KEYS,
        sdiff,
        "Subtract multiple sets",
        "1.0.0",
    ),
    FAMILY.cmd(
        "sdiffstore",
        -3,
        W | DENYOOM,
        ALL_KEYS,
        sdiffstore,
        "Subtract multiple sets and store the resulting set in a key",
        "1.0.0",
    ),
    FAMILY.cmd(
        "sscan",
        -3,
        R,
        ONE_KEY,
        sscan,
        "Incrementally iterate Set elements",
        "2.8.0",
    ),
];

fn max_intset(ctx: &Ctx<'_>) -> usize {
    let n = ctx.server.config.set_max_intset_entries.load(Relaxed);
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// How a command looks a key up, as Redis's lookupKeyRead/Write: reads
/// count keyspace hits and misses and notify `keymiss`. A command that
/// looks a key up again after reading it uses Write, so it counts once.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    Read,
    Write,
}

/// The set at `key`: None when there is no key, WRONGTYPE for another type.
fn lookup<'l>(
    ctx: &mut Ctx<'_>,
    locked: &'l mut Locked<'_>,
    key: &[u8],
    access: Access,
) -> Result<Option<&'l mut Set>, CmdError> {
    if access == Access::Read {
        // Its own lookup: the miss needs `locked` (Ctx::read_lookup), which
        // the returned set borrows.
        let found = locked.get(key).is_some();
        ctx.read_lookup(locked, key, found);
    }
    match locked.get(key).map(|e| e.into_mut().object_mut()) {
        None => Ok(None),
        Some(Some(Object::Set(s))) => Ok(Some(s)),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn reply_member(r: &mut Reply, m: Member<'_>) {
    match m {
        Member::Int(n) => r.bulk_int(n),
        Member::Bytes(b) => r.bulk(b),
    }
}

/// Replies `set`'s members as a set (an array in RESP2).
fn reply_set(r: &mut Reply, set: &Set) {
    r.set(set.len());
    set.iter().for_each(|m| reply_member(r, m));
}

/// SADD key member [member ...]: the number of members added.
fn sadd(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let max = max_intset(ctx);
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let key = argv[1];
        if lookup(ctx, locked, key, Access::Write)?.is_none() {
            let set = Set::for_first(argv[2]);
            locked.set(key, Value::Obj(Box::new(Object::Set(set))), None);
            ctx.notify(events::NEW, "new", key);
        }
        let Some(set) = lookup(ctx, locked, key, Access::Write)? else {
            return Err(CmdError::WrongType);
        };
        let added = argv[2..]
            .iter()
            .filter(|m| set.insert(Member::Bytes(m), max))
            .count();
        if added > 0 {
            ctx.modified(key);
            ctx.notify(events::SET, "sadd", key);
        }
        ctx.reply.int(added as i64);
        Ok(())
    })
}

/// SREM key member [member ...]: the number of members removed; the key
/// goes when the set is empty.
fn srem(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let key = argv[1];
        let Some(set) = lookup(ctx, locked, key, Access::Write)? else {
            ctx.reply.int(0);
            return Ok(());
        };
        let mut removed = 0;
        for m in &argv[2..] {
            if set.remove(Member::Bytes(m)) {
                removed += 1;
                if set.is_empty() {
                    break;
                }
            }
        }
        let deleted = set.is_empty();
        if deleted {
            locked.remove(key);
        }
        if removed > 0 {
            ctx.modified(key);
            notify_removal(ctx, "srem", key, deleted);
        }
        ctx.reply.int(removed);
        Ok(())
    })
}

/// SCARD key: the number of members, 0 for no key.
fn scard(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let n = lookup(ctx, locked, argv[1], Access::Read)?.map_or(0, |s| s.len());
        ctx.reply.int(n as i64);
        Ok(())
    })
}

/// SISMEMBER key member: 1 when member is in the set, else 0.
fn sismember(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let set = lookup(ctx, locked, argv[1], Access::Read)?;
        let found = set.is_some_and(|s| s.contains(Member::Bytes(argv[2])));
        ctx.reply.int(found as i64);
        Ok(())
    })
}

/// SMISMEMBER key member [member ...]: an array of 1/0, one per member.
fn smismember(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let set = lookup(ctx, locked, argv[1], Access::Read)?;
        ctx.reply.array(argv.len() - 2);
        for m in &argv[2..] {
            let found = set.as_ref().is_some_and(|s| s.contains(Member::Bytes(m)));
            ctx.reply.int(found as i64);
        }
        Ok(())
    })
}

/// SMEMBERS key: every member, as a set (sorted for an intset); an empty
/// set for no key.
fn smembers(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    inter_generic(ctx, &argv[1..], &argv[1..], Inter::Reply)
}

/// SRANDMEMBER key [count]: without count, one random member (a bulk
/// string, nil for no key). With count, an array: |count| members that may
/// repeat when count is negative, else up to count distinct members (the
/// whole set, in its order, when count reaches its size).
fn srandmember(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if argv.len() > 3 {
        return Err(CmdError::Syntax);
    }
    if argv.len() == 3 {
        return srandmember_count(ctx, argv);
    }
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let set = lookup(ctx, locked, argv[1], Access::Read)?;
        match set.and_then(|s| s.random(&mut rand::thread_rng())) {
            Some(m) => reply_member(ctx.reply, m),
            None => ctx.reply.null(),
        }
        Ok(())
    })
}

fn srandmember_count(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let count = int(argv[2])?;
    if count == i64::MIN {
        return Err(CmdError::Static(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let Some(set) = lookup(ctx, locked, argv[1], Access::Read)? else {
            ctx.reply.array(0);
            return Ok(());
        };
        let rng = &mut rand::thread_rng();
        let reply = &mut *ctx.reply;
        let size = set.len();
        let want = count.unsigned_abs();
        if want == 0 {
            reply.array(0);
        } else if count < 0 || want == 1 {
            // Members drawn independently: they may repeat.
            reply.array(want as usize);
            for _ in 0..want {
                if let Some(m) = set.random(rng) {
                    reply_member(reply, m);
                }
            }
        } else if want >= size as u64 {
            reply.array(size);
            set.iter().for_each(|m| reply_member(reply, m));
        } else if want * 3 > size as u64 {
            // Many of them: a partial shuffle of all the members.
            let mut all: Vec<Member<'_>> = set.iter().collect();
            let (picked, _) = all.partial_shuffle(rng, want as usize);
            reply.array(picked.len());
            picked.iter().for_each(|m| reply_member(reply, *m));
        } else {
            // Few of them: draw until enough are distinct.
            let mut picked = HashSet::with_capacity(want as usize);
            while (picked.len() as u64) < want {
                if let Some(m) = set.random(rng) {
                    picked.insert(m);
                }
            }
            reply.array(picked.len());
            picked.into_iter().for_each(|m| reply_member(reply, m));
        }
        Ok(())
    })
}

/// SPOP key [count]: without count, a random member removed (nil for no
/// key). With count, a set of up to count removed members (the whole set
/// when count reaches its size). The key goes when the set is empty.
fn spop(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    if argv.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match argv.get(2) {
        Some(a) => Some(
            parse_i64_exact(a)
                .filter(|n| *n >= 0)
                .ok_or(CmdError::Static(
                    "ERR value is out of range, must be positive",
                ))?,
        ),
        None => None,
    };
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let key = argv[1];
        let rng = &mut rand::thread_rng();
        let Some(set) = lookup(ctx, locked, key, Access::Write)? else {
            match count {
                Some(_) => ctx.reply.set(0),
                None => ctx.reply.null(),
            }
            return Ok(());
        };
        match count {
            None => {
                if let Some(m) = set.pop_random(rng) {
                    reply_member(ctx.reply, m.as_member());
                }
            }
            Some(0) => {
                ctx.reply.set(0);
                return Ok(());
            }
            Some(n) if n as u64 >= set.len() as u64 => {
                reply_set(ctx.reply, set);
                locked.remove(key);
                ctx.modified(key);
                notify_removal(ctx, "spop", key, true);
                return Ok(());
            }
            Some(n) => {
                ctx.reply.set(n as usize);
                for _ in 0..n {
                    if let Some(m) = set.pop_random(rng) {
                        reply_member(ctx.reply, m.as_member());
                    }
                }
            }
        }
        let deleted = set.is_empty();
        if deleted {
            locked.remove(key);
        }
        ctx.modified(key);
        notify_removal(ctx, "spop", key, deleted);
        Ok(())
    })
}

/// The notifications of a command that removed members: its own event,
/// then `del` when the key went with them.
fn notify_removal(ctx: &mut Ctx<'_>, event: &str, key: &[u8], deleted: bool) {
    ctx.notify(events::SET, event, key);
    if deleted {
        ctx.notify(events::GENERIC, "del", key);
    }
}

/// SMOVE source destination member: 1 when member moved (or is already in
/// source when source is destination), 0 when it is not in source.
fn smove(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (src, dst, member) = (argv[1], argv[2], Member::Bytes(argv[3]));
    let max = max_intset(ctx);
    ctx.with_keys(&argv[1..3], |ctx, locked| {
        if lookup(ctx, locked, src, Access::Write)?.is_none() {
            ctx.reply.int(0);
            return Ok(());
        }
        let dst_exists = lookup(ctx, locked, dst, Access::Write)?.is_some();
        let Some(from) = lookup(ctx, locked, src, Access::Write)? else {
            return Err(CmdError::WrongType);
        };
        if src == dst {
            ctx.reply.int(from.contains(member) as i64);
            return Ok(());
        }
        if !from.remove(member) {
            ctx.reply.int(0);
            return Ok(());
        }
        let deleted = from.is_empty();
        if deleted {
            locked.remove(src);
        }
        notify_removal(ctx, "srem", src, deleted);
        if !dst_exists {
            let set = Set::for_first(argv[3]);
            locked.set(dst, Value::Obj(Box::new(Object::Set(set))), None);
            ctx.notify(events::NEW, "new", dst);
        }
        ctx.modified(src);
        // The destination changes (and is signalled) only when it did not
        // hold the member yet.
        if let Some(to) = lookup(ctx, locked, dst, Access::Write)? {
            if to.insert(member, max) {
                ctx.modified(dst);
                ctx.notify(events::SET, "sadd", dst);
            }
        }
        ctx.reply.int(1);
        Ok(())
    })
}

/// Where an intersection goes.
#[derive(Clone, Copy)]
enum Inter<'a> {
    /// Replied as a set.
    Reply,
    /// Stored at this key; the reply is its size.
    Store(&'a [u8]),
    /// Only counted, stopping at a limit (0: none).
    Card(usize),
}

/// Redis's sinterGenericCommand: checks every key's type, then keeps the
/// members of the smallest set that all the others hold, in that set's
/// order. A missing key makes the result empty.
fn inter_generic(
    ctx: &mut Ctx<'_>,
    lock_keys: &[&[u8]],
    keys: &[&[u8]],
    to: Inter<'_>,
) -> Result<(), CmdError> {
    let max = max_intset(ctx);
    ctx.with_keys(lock_keys, |ctx, locked| {
        let mut sizes = Vec::with_capacity(keys.len());
        let mut missing = false;
        for key in keys {
            match lookup(ctx, locked, key, Access::Read)? {
                Some(s) => sizes.push(s.len()),
                None => missing = true,
            }
        }
        let mut found: Vec<Owned> = Vec::new();
        if !missing {
            let mut order: Vec<usize> = (0..keys.len()).collect();
            order.sort_by_key(|&i| sizes[i]);
            if let (Inter::Reply, [only]) = (to, &order[..]) {
                if let Some(set) = lookup(ctx, locked, keys[*only], Access::Write)? {
                    reply_set(ctx.reply, set);
                }
                return Ok(());
            }
            if let Some(first) = lookup(ctx, locked, keys[order[0]], Access::Write)? {
                found = first.iter().map(Member::to_owned).collect();
            }
            for &i in &order[1..] {
                if let Some(other) = lookup(ctx, locked, keys[i], Access::Write)? {
                    found.retain(|m| other.contains(m.as_member()));
                }
            }
        }
        match to {
            Inter::Reply => {
                ctx.reply.set(found.len());
                found
                    .iter()
                    .for_each(|m| reply_member(ctx.reply, m.as_member()));
            }
            Inter::Card(limit) => {
                let n = if limit > 0 {
                    found.len().min(limit)
                } else {
                    found.len()
                };
                ctx.reply.int(n as i64);
            }
            Inter::Store(dst) => {
                let mut set = Set::default();
                for m in &found {
                    set.insert(m.as_member(), max);
                }
                store(ctx, locked, dst, set, "sinterstore");
            }
        }
        Ok(())
    })
}

/// Stores a computed set at `dst` (deleting `dst` when it is empty) and
/// replies its size; `event` is the command's notification.
fn store(ctx: &mut Ctx<'_>, locked: &mut Locked<'_>, dst: &[u8], set: Set, event: &str) {
    let n = set.len();
    if n > 0 {
        let old = locked.set(dst, Value::Obj(Box::new(Object::Set(set))), None);
        ctx.modified(dst);
        ctx.notify_new(&old, dst);
        ctx.notify(events::SET, event, dst);
    } else if locked.remove(dst).is_some() {
        ctx.modified(dst);
        ctx.notify(events::GENERIC, "del", dst);
    }
    ctx.reply.int(n as i64);
}

/// SINTER key [key ...]: the members common to every set, as a set.
fn sinter(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    inter_generic(ctx, &argv[1..], &argv[1..], Inter::Reply)
}

/// SINTERSTORE destination key [key ...]: the intersection stored at
/// destination; its size.
fn sinterstore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    inter_generic(ctx, &argv[1..], &argv[2..], Inter::Store(argv[1]))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]: the size of the
/// intersection, counting up to limit when it is not 0.
fn sintercard(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let numkeys = parse_i64_exact(argv[1])
        .filter(|n| *n >= 1)
        .ok_or(CmdError::Static("ERR numkeys should be greater than 0"))?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > argv.len() - 2 {
        return Err(CmdError::Static(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let keys = &argv[2..2 + numkeys];
    let mut limit = 0;
    let mut i = 2 + numkeys;
    while i < argv.len() {
        if is(argv[i], "limit") && i + 1 < argv.len() {
            let n = parse_i64_exact(argv[i + 1])
                .filter(|n| *n >= 0)
                .ok_or(CmdError::Static("ERR LIMIT can't be negative"))?;
            limit = usize::try_from(n).unwrap_or(usize::MAX);
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    inter_generic(ctx, keys, keys, Inter::Card(limit))
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Diff,
}

/// Redis's sunionDiffGenericCommand: checks every key's type, then builds
/// the union, or the difference of the first set and all the others, and
/// replies it as a set or stores it at `dst`.
///
/// The difference uses Redis's choice of algorithm, because it decides the
/// stored encoding: keeping only the first set's members that no other set
/// has (cheap when the first set is small), or copying the first set and
/// removing every member of the others (which may leave a hashtable that
/// ended up holding only integers).
fn union_diff_generic(
    ctx: &mut Ctx<'_>,
    lock_keys: &[&[u8]],
    keys: &[&[u8]],
    dst: Option<&[u8]>,
    op: SetOp,
) -> Result<(), CmdError> {
    let max = max_intset(ctx);
    ctx.with_keys(lock_keys, |ctx, locked| {
        let mut sizes = Vec::with_capacity(keys.len());
        for key in keys {
            sizes.push(lookup(ctx, locked, key, Access::Read)?.map(|s| s.len()));
        }
        let mut result = Set::default();
        match op {
            SetOp::Union => {
                for key in keys {
                    if let Some(s) = lookup(ctx, locked, key, Access::Write)? {
                        s.iter().for_each(|m| {
                            result.insert(m, max);
                        });
                    }
                }
            }
            SetOp::Diff => {
                if let Some(first) = sizes[0].filter(|n| *n > 0) {
                    let present = sizes.iter().flatten().count() as u64;
                    let one_work = first as u64 * present / 2;
                    let two_work: u64 = sizes.iter().flatten().map(|n| *n as u64).sum();
                    let first_key = keys[0];
                    if one_work <= two_work {
                        let mut left: Vec<Owned> = Vec::new();
                        if let Some(s) = lookup(ctx, locked, first_key, Access::Write)? {
                            left = s.iter().map(Member::to_owned).collect();
                        }
                        for key in &keys[1..] {
                            if let Some(other) = lookup(ctx, locked, key, Access::Write)? {
                                left.retain(|m| !other.contains(m.as_member()));
                            }
                        }
                        for m in &left {
                            result.insert(m.as_member(), max);
                        }
                    } else {
                        if let Some(s) = lookup(ctx, locked, first_key, Access::Write)? {
                            s.iter().for_each(|m| {
                                result.insert(m, max);
                            });
                        }
                        for key in &keys[1..] {
                            if let Some(other) = lookup(ctx, locked, key, Access::Write)? {
                                other.iter().for_each(|m| {
                                    result.remove(m);
                                });
                            }
                            if result.is_empty() {
                                break;
                            }
                        }
                    }
                }
            }
        }
        match dst {
            Some(dst) => {
                let event = match op {
                    SetOp::Union => "sunionstore",
                    SetOp::Diff => "sdiffstore",
                };
                store(ctx, locked, dst, result, event)
            }
            None => reply_set(ctx.reply, &result),
        }
        Ok(())
    })
}

/// SUNION key [key ...]: the members of any of the sets, as a set.
fn sunion(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    union_diff_generic(ctx, &argv[1..], &argv[1..], None, SetOp::Union)
}

/// SUNIONSTORE destination key [key ...]: the union stored at destination;
/// its size.
fn sunionstore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    union_diff_generic(ctx, &argv[1..], &argv[2..], Some(argv[1]), SetOp::Union)
}

/// SDIFF key [key ...]: the members of the first set that no other set
/// has, as a set.
fn sdiff(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    union_diff_generic(ctx, &argv[1..], &argv[1..], None, SetOp::Diff)
}

/// SDIFFSTORE destination key [key ...]: the difference stored at
/// destination; its size.
fn sdiffstore(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    union_diff_generic(ctx, &argv[1..], &argv[2..], Some(argv[1]), SetOp::Diff)
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]: the next cursor (a bulk
/// string, "0" when done) and an array of members. An intset comes whole
/// with cursor 0; a hashtable is walked like Redis's dictScan, so every
/// member present for the whole scan is returned at least once.
fn sscan(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut cursor = parse_cursor(argv[2])?;
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let Some(set) = lookup(ctx, locked, argv[1], Access::Read)? else {
            ctx.reply.array(2);
            ctx.reply.bulk(b"0");
            ctx.reply.array(0);
            return Ok(());
        };
        let mut count: i64 = 10;
        let mut pattern = None;
        let mut i = 3;
        while i < argv.len() {
            let has_value = i + 1 < argv.len();
            if is(argv[i], "count") && has_value {
                count = int(argv[i + 1])?;
                if count < 1 {
                    return Err(CmdError::Syntax);
                }
            } else if is(argv[i], "match") && has_value {
                // "*" is no filter at all in Redis.
                pattern = Some(argv[i + 1]).filter(|p| *p != b"*");
            } else {
                return Err(CmdError::Syntax);
            }
            i += 2;
        }
        let count = count as usize;
        let mut budget = count.saturating_mul(10);
        let mut found: Vec<Member<'_>> = Vec::new();
        loop {
            cursor = set.scan_step(cursor, |m| found.push(m));
            if cursor == 0 || budget == 0 || found.len() >= count {
                break;
            }
            budget -= 1;
        }
        if let Some(p) = pattern {
            found.retain(|m| m.with_bytes(|b| glob::matches(p, b, false)));
        }
        ctx.reply.array(2);
        ctx.reply
            .bulk(itoa::Buffer::new().format(cursor).as_bytes());
        ctx.reply.array(found.len());
        found.iter().for_each(|m| reply_member(ctx.reply, *m));
        Ok(())
    })
}
