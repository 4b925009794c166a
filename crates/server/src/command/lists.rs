//! List commands: Redis 7.0's list family, blocking pops included.
//!
//! Lists are stored as [`List`] (store::list), a chain of packed nodes
//! sized by `list-max-listpack-size`. An emptied list is deleted, as in
//! Redis. Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) run
//! their non-blocking body first; when every key is empty they register a
//! wait with [`Ctx::block`] while still holding the keys' locks, and a
//! later write re-runs them (see crate::blocking), so the served command
//! takes the same path as one that found data at once.

use std::sync::atomic::Ordering::Relaxed;

use super::args::{int, is, timeout};
use super::{acl, flags, CmdError, Command, Ctx, Family, Keys};
use crate::blocking::TimeoutReply;
use crate::pubsub::events;
use crate::store::list::{End, List};
use crate::store::{EntryMut, Locked, Object, Value, ValueRef};

const FAMILY: Family = Family {
    acl: acl::LIST,
    group: "list",
};

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
/// Every argument but the trailing timeout (BLPOP, BRPOP).
const KEYS_THEN_TIMEOUT: Keys = Keys {
    first: 1,
    last: -2,
    step: 1,
};
/// Keys counted by a numkeys argument (LMPOP, BLMPOP): Redis reports
/// (0, 0, 0) and the movablekeys flag.
const NUMKEYS: Keys = super::NO_KEYS;

const W: u32 = flags::WRITE;
const R: u32 = flags::READONLY;
const DENYOOM: u32 = flags::DENYOOM;
const FAST: u32 = flags::FAST;
const BLOCKING: u32 = flags::BLOCKING;
const NOSCRIPT: u32 = flags::NOSCRIPT;

pub const COMMANDS: &[Command] = &[
    FAMILY.cmd(
        "lpush",
        -3,
        W | DENYOOM | FAST,
        ONE_KEY,
        lpush,
        "Prepend one or multiple elements to a list",
        "1.0.0",
    ),
    FAMILY.cmd(
        "rpush",
        -3,
        W | DENYOOM | FAST,
        ONE_KEY,
        rpush,
        "Append one or multiple elements to a list",
        "1.0.0",
    ),
    FAMILY.cmd(
        "lpushx",
        -3,
        W | DENYOOM | FAST,
        ONE_KEY,
        lpushx,
        "Prepend an element to a list, only if the list exists",
        "2.2.0",
    ),
    FAMILY.cmd(
        "rpushx",
        -3,
        W | DENYOOM | FAST,
        ONE_KEY,
        rpushx,
        "Append an element to a list, only if the list exists",
        "2.2.0",
    ),
    FAMILY.cmd(
        "lpop",
        -2,
        W | FAST,
        ONE_KEY,
        lpop,
        "Remove and get the first elements in a list",
        "1.0.0",
    ),
    FAMILY.cmd(
        "rpop",
        -2,
        W | FAST,
        ONE_KEY,
        rpop,
        "Remove and get the last elements in a list",
        "1.0.0",
    ),
    FAMILY.cmd(
        "llen",
        2,
        R | FAST,
        ONE_KEY,
        llen,
        "Get the length of a list",
        "1.0.0",
    ),
    FAMILY.cmd(
        "lrange",
        4,
        R,
        ONE_KEY,
        lrange,
        "Get a range of elements from a list",
        "1.0.0",
    ),
    FAMILY.cmd(
        "lindex",
        3,
        R,
        ONE_KEY,
        lindex,
        "Get an element from a list by its index",
        "1.0.0",
    ),
    FAMILY.cmd(
        "lset",
        4,
        W | DENYOOM,
        ONE_KEY,
        lset,
        "Set the value of an element in a list by its index",
        "1.0.0",
    ),
    FAMILY.cmd(
        "linsert",
        5,
        W | DENYOOM,
        ONE_KEY,
        linsert,
        "Insert an element before or after another element in a list",
        "2.2.0",
    ),
    FAMILY.cmd(
        "lrem",
        4,
        W,
        ONE_KEY,
        lrem,
        "Remove elements from a list",
        "1.0.0",
    ),
    FAMILY.cmd(
        "ltrim",
        4,
        W,
        ONE_KEY,
        ltrim,
        "Trim a list to the specified range",
        "1.0.0",
    ),
    FAMILY.cmd(
        "lpos",
        -3,
        R,
        ONE_KEY,
        lpos,
        "Return the index of matching elements on a list",
        "6.0.6",
    ),
    FAMILY.cmd(
        "lmove",
        5,
        W | DENYOOM,
        TWO_KEYS,
        lmove,
        "Pop an element from a list, push it to another list and return it",
        "6.2.0",
    ),
    FAMILY.cmd(
        "rpoplpush",
        3,
        W | DENYOOM,
        TWO_KEYS,
        rpoplpush,
        "Remove the last element in a list, prepend it to another list and return it",
        "1.2.0",
    ),
    FAMILY.cmd(
        "lmpop",
        -4,
        W | flags::MOVABLE_KEYS,
        NUMKEYS,
        lmpop,
        "Pop elements from a list",
        "7.0.0",
    ),
    FAMILY.cmd(
        "blpop",
        -3,
        W | NOSCRIPT | BLOCKING,
        KEYS_THEN_TIMEOUT,
        blpop,
        "Remove and get the first element in a list, or block until one is available",
        "2.0.0",
    ),
    FAMILY.cmd(
        "brpop",
        -3,
        W | NOSCRIPT | BLOCKING,
        KEYS_THEN_TIMEOUT,
        brpop,
        "Remove and get the last element in a list, or block until one is available",
        "2.0.0",
    ),
    FAMILY.cmd(
        "blmove",
        6,
        W | DENYOOM | NOSCRIPT | BLOCKING,
        TWO_KEYS,
        blmove,
        "Pop an element from a list, push it to another list and return it; or block until one is available",
        "6.2.0",
    ),
    FAMILY.cmd(
        "brpoplpush",
        4,
        W | DENYOOM | NOSCRIPT | BLOCKING,
        TWO_KEYS,
        brpoplpush,
        "Pop an element from a list, push it to another list and return it; or block until one is available",
        "2.2.0",
    ),
    FAMILY.cmd(
        "blmpop",
        -5,
        W | BLOCKING | flags::MOVABLE_KEYS,
        NUMKEYS,
        blmpop,
        "Pop elements from a list, or block until one is available",
        "7.0.0",
    ),
];

/// The node size directive, read once per command.
fn fill(ctx: &Ctx<'_>) -> i32 {
    let f = ctx.server.config.list_max_listpack_size.load(Relaxed);
    f.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// The list held by an entry; WRONGTYPE for every other type.
fn as_list<'e>(e: &'e mut EntryMut<'_>) -> Result<&'e mut List, CmdError> {
    match e.get_mut().object_mut() {
        Some(Object::List(l)) => Ok(l),
        _ => Err(CmdError::WrongType),
    }
}

fn as_list_ref(v: ValueRef<'_>) -> Result<&List, CmdError> {
    match v {
        ValueRef::Obj(Object::List(l)) => Ok(l),
        _ => Err(CmdError::WrongType),
    }
}

/// The list a read lookup found, counting the keyspace hit as Redis's
/// lookupKeyRead does (a miss is the caller's: Ctx::read_lookup).
fn read_list<'l>(ctx: &Ctx<'_>, e: &'l EntryMut<'_>) -> Result<&'l List, CmdError> {
    ctx.read_hit();
    as_list_ref(e.value())
}

/// Parses LEFT or RIGHT; a syntax error otherwise.
fn end_arg(arg: &[u8]) -> Result<End, CmdError> {
    if is(arg, "left") {
        Ok(End::Head)
    } else if is(arg, "right") {
        Ok(End::Tail)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Redis's rule for an index into a list of `len`: negative counts from
/// the end; `None` when outside the list.
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if index < 0 { len + index } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

/// Redis's rule for an inclusive range `start..=stop` of a list of `len`:
/// negative indexes count from the end, both are clamped; `None` when the
/// range is empty. Returns (first index, element count).
fn resolve_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut stop = if stop < 0 { len + stop } else { stop };
    start = start.max(0);
    if start > stop || start >= len {
        return None;
    }
    stop = stop.min(len - 1);
    Some((start as usize, (stop - start + 1) as usize))
}

/// Pushes every element in order at `end`, creating the list unless
/// `only_existing`; returns the new length (None when there was no list
/// to push to). Sends the `new` notification of a created list and the
/// push event (`lpush`/`rpush`, also for the X variants and LMOVE's
/// destination), as Redis's dbAdd and pushGenericCommand do.
fn push_items(
    ctx: &mut Ctx<'_>,
    locked: &mut Locked<'_>,
    key: &[u8],
    items: &[&[u8]],
    end: End,
    fill: i32,
    only_existing: bool,
) -> Result<Option<usize>, CmdError> {
    if let Some(mut e) = locked.get(key) {
        let list = as_list(&mut e)?;
        for item in items {
            list.push(end, item, fill);
        }
        let len = list.len();
        notify_push(ctx, key, end);
        return Ok(Some(len));
    }
    if only_existing {
        return Ok(None);
    }
    let mut list = List::new();
    for item in items {
        list.push(end, item, fill);
    }
    let len = list.len();
    locked.set(key, Value::Obj(Box::new(Object::List(list))), None);
    ctx.notify(events::NEW, "new", key);
    notify_push(ctx, key, end);
    Ok(Some(len))
}

fn notify_push(ctx: &mut Ctx<'_>, key: &[u8], end: End) {
    let event = match end {
        End::Head => "lpush",
        End::Tail => "rpush",
    };
    ctx.notify(events::LIST, event, key);
}

/// The notifications of elements removed from `end`: the pop event, then
/// `del` when the list went with them.
fn notify_pop(ctx: &mut Ctx<'_>, key: &[u8], end: End, deleted: bool) {
    let event = match end {
        End::Head => "lpop",
        End::Tail => "rpop",
    };
    ctx.notify(events::LIST, event, key);
    if deleted {
        ctx.notify(events::GENERIC, "del", key);
    }
}

/// Redis's pushGenericCommand, shared by LPUSH, RPUSH, LPUSHX and RPUSHX:
/// the length after the pushes, 0 when an X variant finds no list.
fn push_generic(
    ctx: &mut Ctx<'_>,
    argv: &[&[u8]],
    end: End,
    only_existing: bool,
) -> Result<(), CmdError> {
    let key = argv[1];
    let fill = fill(ctx);
    ctx.with_keys(&[key], |ctx, locked| {
        match push_items(ctx, locked, key, &argv[2..], end, fill, only_existing)? {
            Some(len) => {
                ctx.modified(key);
                ctx.reply.int(len as i64);
            }
            None => ctx.reply.int(0),
        }
        Ok(())
    })
}

/// LPUSH key element [element ...]: integer, the length of the list.
fn lpush(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    push_generic(ctx, argv, End::Head, false)
}

/// RPUSH key element [element ...]: integer, the length of the list.
fn rpush(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    push_generic(ctx, argv, End::Tail, false)
}

/// LPUSHX key element [element ...]: integer, the length, 0 when no list.
fn lpushx(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    push_generic(ctx, argv, End::Head, true)
}

/// RPUSHX key element [element ...]: integer, the length, 0 when no list.
fn rpushx(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    push_generic(ctx, argv, End::Tail, true)
}

/// Pops up to `count` elements from `end` of the list at `key`, deleting
/// the key when it empties, with the pop's notifications. `None` when
/// there is no list.
fn pop_items(
    ctx: &mut Ctx<'_>,
    locked: &mut Locked<'_>,
    key: &[u8],
    end: End,
    count: usize,
) -> Result<Option<Vec<Vec<u8>>>, CmdError> {
    let popped = take_items(ctx, locked, key, end, count)?;
    if let Some((items, deleted)) = &popped {
        if !items.is_empty() {
            notify_pop(ctx, key, end, *deleted);
        }
    }
    Ok(popped.map(|(items, _)| items))
}

/// Elements taken from a list, and whether its key went with them.
type Taken = (Vec<Vec<u8>>, bool);

/// The body of [`pop_items`] without notifications (LMOVE sends them
/// after the push, as Redis does): the elements and whether the key was
/// deleted.
fn take_items(
    ctx: &Ctx<'_>,
    locked: &mut Locked<'_>,
    key: &[u8],
    end: End,
    count: usize,
) -> Result<Option<Taken>, CmdError> {
    let Some(mut e) = locked.get(key) else {
        return Ok(None);
    };
    let list = as_list(&mut e)?;
    let mut items = Vec::with_capacity(count.min(list.len()));
    while items.len() < count {
        match list.pop(end) {
            Some(item) => items.push(item),
            None => break,
        }
    }
    let deleted = list.is_empty();
    if deleted {
        locked.remove(key);
    }
    if !items.is_empty() {
        ctx.modified(key);
    }
    Ok(Some((items, deleted)))
}

/// Redis's popGenericCommand, shared by LPOP and RPOP.
fn pop_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], end: End) -> Result<(), CmdError> {
    if argv.len() > 3 {
        return Err(CmdError::WrongArity(
            String::from_utf8_lossy(argv[0]).to_lowercase(),
        ));
    }
    let count = match argv.get(2) {
        Some(arg) => Some(int(arg).ok().filter(|n| *n >= 0).ok_or(CmdError::Static(
            "ERR value is out of range, must be positive",
        ))? as usize),
        None => None,
    };
    let key = argv[1];
    ctx.with_keys(&[key], |ctx, locked| {
        let items = match count {
            // The key is looked up (and type-checked) before a zero count
            // gives its empty answer, as in Redis.
            Some(0) => match locked.get(key) {
                Some(e) => as_list_ref(e.value()).map(|_| Some(Vec::new()))?,
                None => None,
            },
            Some(n) => pop_items(ctx, locked, key, end, n)?,
            None => pop_items(ctx, locked, key, end, 1)?,
        };
        match (items, count) {
            (None, Some(_)) => ctx.reply.null_array(),
            (None, None) => ctx.reply.null(),
            (Some(items), Some(_)) => {
                ctx.reply.array(items.len());
                for item in &items {
                    ctx.reply.bulk(item);
                }
            }
            (Some(items), None) => match items.first() {
                Some(item) => ctx.reply.bulk(item),
                None => ctx.reply.null(),
            },
        }
        Ok(())
    })
}

/// LPOP key [count]: the first element (bulk, nil when no list), or with
/// a count an array of up to count elements (null array when no list).
fn lpop(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    pop_generic(ctx, argv, End::Head)
}

/// RPOP key [count]: as LPOP, from the tail.
fn rpop(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    pop_generic(ctx, argv, End::Tail)
}

/// LLEN key: integer, the length (0 when no list).
fn llen(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let len = match locked.get(argv[1]) {
            Some(e) => read_list(ctx, &e)?.len(),
            None => {
                ctx.read_lookup(locked, argv[1], false);
                0
            }
        };
        ctx.reply.int(len as i64);
        Ok(())
    })
}

/// LRANGE key start stop: array of the elements in the inclusive range.
fn lrange(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (start, stop) = (int(argv[2])?, int(argv[3])?);
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let Some(e) = locked.get(argv[1]) else {
            ctx.read_lookup(locked, argv[1], false);
            ctx.reply.array(0);
            return Ok(());
        };
        let list = read_list(ctx, &e)?;
        let Some((first, count)) = resolve_range(start, stop, list.len()) else {
            ctx.reply.array(0);
            return Ok(());
        };
        ctx.reply.array(count);
        for item in list.range(first, count) {
            ctx.reply.bulk(item);
        }
        Ok(())
    })
}

/// LINDEX key index: the element (bulk), nil when out of range or no list.
fn lindex(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let Some(e) = locked.get(argv[1]) else {
            ctx.read_lookup(locked, argv[1], false);
            ctx.reply.null();
            return Ok(());
        };
        let list = read_list(ctx, &e)?;
        // Redis reads the index only once it has found the list.
        let index = int(argv[2])?;
        match resolve_index(index, list.len()).and_then(|i| list.get(i)) {
            Some(item) => ctx.reply.bulk(item),
            None => ctx.reply.null(),
        }
        Ok(())
    })
}

/// LSET key index element: +OK; "ERR no such key", "ERR index out of range".
fn lset(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let key = argv[1];
    let fill = fill(ctx);
    ctx.with_keys(&[key], |ctx, locked| {
        let mut e = locked.get(key).ok_or(CmdError::NoSuchKey)?;
        let list = as_list(&mut e)?;
        let index = int(argv[2])?;
        let i =
            resolve_index(index, list.len()).ok_or(CmdError::Static("ERR index out of range"))?;
        list.set(i, argv[3], fill);
        ctx.modified(key);
        ctx.notify(events::LIST, "lset", key);
        ctx.reply.ok();
        Ok(())
    })
}

/// LINSERT key BEFORE|AFTER pivot element: integer, the new length; -1
/// when the pivot is not found, 0 when there is no list.
fn linsert(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let after = if is(argv[2], "after") {
        true
    } else if is(argv[2], "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let (key, pivot, item) = (argv[1], argv[3], argv[4]);
    let fill = fill(ctx);
    ctx.with_keys(&[key], |ctx, locked| {
        let Some(mut e) = locked.get(key) else {
            ctx.reply.int(0);
            return Ok(());
        };
        let list = as_list(&mut e)?;
        let Some(pos) = list.iter().position(|x| x == pivot) else {
            ctx.reply.int(-1);
            return Ok(());
        };
        list.insert(pos + after as usize, item, fill);
        let len = list.len();
        ctx.modified(key);
        ctx.notify(events::LIST, "linsert", key);
        ctx.reply.int(len as i64);
        Ok(())
    })
}

/// LREM key count element: integer, how many were removed (count > 0 from
/// the head, < 0 from the tail, 0 all).
fn lrem(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let count = int(argv[2])?;
    let key = argv[1];
    let fill = fill(ctx);
    let (from, limit) = if count < 0 {
        (End::Tail, count.unsigned_abs())
    } else {
        (End::Head, count as u64)
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    ctx.with_keys(&[key], |ctx, locked| {
        let Some(mut e) = locked.get(key) else {
            ctx.reply.int(0);
            return Ok(());
        };
        let list = as_list(&mut e)?;
        let removed = list.remove_matching(argv[3], limit, from, fill);
        let deleted = list.is_empty();
        if deleted {
            locked.remove(key);
        }
        if removed > 0 {
            ctx.modified(key);
            ctx.notify(events::LIST, "lrem", key);
            if deleted {
                ctx.notify(events::GENERIC, "del", key);
            }
        }
        ctx.reply.int(removed as i64);
        Ok(())
    })
}

/// LTRIM key start stop: +OK; the list keeps only the inclusive range.
fn ltrim(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (start, stop) = (int(argv[2])?, int(argv[3])?);
    let key = argv[1];
    ctx.with_keys(&[key], |ctx, locked| {
        let Some(mut e) = locked.get(key) else {
            ctx.reply.ok();
            return Ok(());
        };
        let list = as_list(&mut e)?;
        let len = list.len();
        match resolve_range(start, stop, len) {
            Some((first, count)) => {
                list.remove_end(End::Head, first);
                list.remove_end(End::Tail, len - first - count);
            }
            None => list.remove_end(End::Head, len),
        }
        let deleted = list.is_empty();
        if deleted {
            locked.remove(key);
        }
        // Redis signals the key even when nothing was trimmed.
        ctx.modified(key);
        ctx.notify(events::LIST, "ltrim", key);
        if deleted {
            ctx.notify(events::GENERIC, "del", key);
        }
        ctx.reply.ok();
        Ok(())
    })
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]: the
/// index of the first match (nil if none), or with COUNT an array of up
/// to num-matches indexes (all with COUNT 0).
fn lpos(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
    let mut i = 3;
    while i < argv.len() {
        let value = argv.get(i + 1);
        match value {
            Some(v) if is(argv[i], "rank") => {
                rank = int(v)?;
                if rank == 0 {
                    return Err(CmdError::Static(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                         second ... or use negative to start from the end of the list",
                    ));
                }
            }
            Some(v) if is(argv[i], "count") => {
                count = Some(positive(v, "ERR COUNT can't be negative")?);
            }
            Some(v) if is(argv[i], "maxlen") => {
                maxlen = positive(v, "ERR MAXLEN can't be negative")?;
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 2;
    }
    // A negative rank scans from the tail. Redis 7.0 negates it in C, so
    // LLONG_MIN stays negative and matches from the first hit on.
    let from_tail = rank < 0;
    if from_tail {
        rank = rank.wrapping_neg();
    }
    let item = argv[2];
    ctx.with_keys(&argv[1..2], |ctx, locked| {
        let Some(e) = locked.get(argv[1]) else {
            ctx.read_lookup(locked, argv[1], false);
            match count {
                Some(_) => ctx.reply.array(0),
                None => ctx.reply.null(),
            }
            return Ok(());
        };
        let list = read_list(ctx, &e)?;
        let len = list.len();
        let scan: Box<dyn Iterator<Item = &[u8]>> = if from_tail {
            Box::new(list.iter().rev())
        } else {
            Box::new(list.iter())
        };
        let limit = if maxlen == 0 {
            usize::MAX
        } else {
            maxlen as usize
        };
        let mut found = Vec::new();
        let mut matches = 0i64;
        for (index, x) in scan.take(limit).enumerate() {
            if x != item {
                continue;
            }
            matches += 1;
            if matches < rank {
                continue;
            }
            found.push(if from_tail { len - index - 1 } else { index });
            match count {
                None => break,
                Some(c) if c != 0 && found.len() as i64 >= c => break,
                Some(_) => {}
            }
        }
        match count {
            Some(_) => {
                ctx.reply.array(found.len());
                for i in found {
                    ctx.reply.int(i as i64);
                }
            }
            None => match found.first() {
                Some(i) => ctx.reply.int(*i as i64),
                None => ctx.reply.null(),
            },
        }
        Ok(())
    })
}

/// A non-negative integer option; `msg` for anything else (Redis's
/// getPositiveLongFromObjectOrReply uses its message for both cases).
fn positive(arg: &[u8], msg: &'static str) -> Result<i64, CmdError> {
    int(arg)
        .ok()
        .filter(|n| *n >= 0)
        .ok_or(CmdError::Static(msg))
}

/// Redis's lmoveGenericCommand body, shared by LMOVE, RPOPLPUSH, BLMOVE
/// and BRPOPLPUSH: moves one element from `from` of `src` to `to` of `dst`
/// and returns it; `None` when `src` has no list. The destination's type
/// is checked only when there is something to move, as in Redis, and the
/// notifications come in Redis's order: the push, then the pop.
fn move_one(
    ctx: &mut Ctx<'_>,
    locked: &mut Locked<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
    fill: i32,
) -> Result<Option<Vec<u8>>, CmdError> {
    let Some(mut e) = locked.get(src) else {
        return Ok(None);
    };
    let list = match as_list(&mut e) {
        // Redis 7.0 serves a blocked client only from a key holding a
        // list; one given another type leaves it waiting.
        Err(_) if ctx.serving => return Ok(None),
        list => list?,
    };
    if src == dst {
        let Some(item) = list.pop(from) else {
            return Ok(None);
        };
        list.push(to, &item, fill);
        ctx.modified(src);
        notify_push(ctx, src, to);
        notify_pop(ctx, src, from, false);
        return Ok(Some(item));
    }
    if let Some(mut d) = locked.get(dst) {
        as_list(&mut d)?;
    }
    let Some((mut items, deleted)) = take_items(ctx, locked, src, from, 1)? else {
        return Ok(None);
    };
    let Some(item) = items.pop() else {
        return Ok(None);
    };
    push_items(ctx, locked, dst, &[&item], to, fill, false)?;
    ctx.modified(dst);
    notify_pop(ctx, src, from, deleted);
    Ok(Some(item))
}

/// The reply of the LMOVE family: the element moved, or nil.
fn reply_moved(ctx: &mut Ctx<'_>, item: Option<Vec<u8>>) {
    match item {
        Some(item) => ctx.reply.bulk(&item),
        None => ctx.reply.null(),
    }
}

/// Redis's blmoveGenericCommand, shared by LMOVE, RPOPLPUSH, BLMOVE and
/// BRPOPLPUSH: moves at once when `src` has data; otherwise nil, or for
/// the blocking forms (`wait` given) a wait on `src`.
fn move_generic(
    ctx: &mut Ctx<'_>,
    argv: &[&[u8]],
    from: End,
    to: End,
    wait: Option<Option<std::time::Duration>>,
) -> Result<(), CmdError> {
    let (src, dst) = (argv[1], argv[2]);
    let fill = fill(ctx);
    let mut locked = ctx.lock(&[src, dst]);
    let result = match move_one(ctx, &mut locked, src, dst, from, to, fill) {
        // Redis 7.0 answers nil when BLMOVE cannot block (MULTI), but a
        // null array when its timeout passes.
        Ok(None) if wait.is_some() && !ctx.in_transaction => {
            let t = wait.flatten();
            ctx.block(&[src], argv, t, TimeoutReply::NullArray);
            Ok(())
        }
        Ok(item) => {
            reply_moved(ctx, item);
            Ok(())
        }
        Err(e) => Err(e),
    };
    ctx.finish(locked);
    result
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT: the element moved
/// (bulk), nil when the source is empty.
fn lmove(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (from, to) = (end_arg(argv[3])?, end_arg(argv[4])?);
    move_generic(ctx, argv, from, to, None)
}

/// RPOPLPUSH source destination: LMOVE source destination RIGHT LEFT.
fn rpoplpush(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    move_generic(ctx, argv, End::Tail, End::Head, None)
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout: as LMOVE, or
/// waits for the source; nil after the timeout.
fn blmove(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let (from, to) = (end_arg(argv[3])?, end_arg(argv[4])?);
    let t = timeout(argv[5])?;
    move_generic(ctx, argv, from, to, Some(t))
}

/// BRPOPLPUSH source destination timeout: BLMOVE ... RIGHT LEFT timeout.
fn brpoplpush(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let t = timeout(argv[3])?;
    move_generic(ctx, argv, End::Tail, End::Head, Some(t))
}

/// The parsed arguments of LMPOP/BLMPOP: `numkeys key... LEFT|RIGHT
/// [COUNT count]` starting at `at`.
struct MultiPop<'a> {
    keys: &'a [&'a [u8]],
    end: End,
    count: usize,
}

/// Redis's lmpopGenericCommand argument parsing, with its error texts.
fn parse_mpop<'a>(argv: &'a [&'a [u8]], at: usize) -> Result<MultiPop<'a>, CmdError> {
    let numkeys = int(argv[at])
        .ok()
        .filter(|n| *n > 0)
        .ok_or(CmdError::Static("ERR numkeys should be greater than 0"))?;
    let where_at = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(at + 1))
        .filter(|w| *w < argv.len())
        .ok_or(CmdError::Syntax)?;
    let end = end_arg(argv[where_at])?;
    let mut count = None;
    let mut i = where_at + 1;
    while i < argv.len() {
        match argv.get(i + 1) {
            Some(v) if count.is_none() && is(argv[i], "count") => {
                let n = int(v)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(CmdError::Static("ERR count should be greater than 0"))?;
                count = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 2;
    }
    Ok(MultiPop {
        keys: &argv[at + 1..where_at],
        end,
        count: count.unwrap_or(1),
    })
}

/// Pops from the first non-empty list among `keys` and replies
/// `[key, [elements...]]`; false (nothing written) when all are empty.
fn mpop_first(
    ctx: &mut Ctx<'_>,
    locked: &mut Locked<'_>,
    p: &MultiPop<'_>,
) -> Result<bool, CmdError> {
    for key in p.keys {
        let Some(items) = (match pop_items(ctx, locked, key, p.end, p.count) {
            // A blocked client is served only from lists (see move_one).
            Err(_) if ctx.serving => continue,
            items => items?,
        }) else {
            continue;
        };
        ctx.reply.array(2);
        ctx.reply.bulk(key);
        ctx.reply.array(items.len());
        for item in &items {
            ctx.reply.bulk(item);
        }
        return Ok(true);
    }
    Ok(false)
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: `[key, [elements]]`
/// from the first non-empty list, or a null array.
fn lmpop(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let p = parse_mpop(argv, 1)?;
    ctx.with_keys(p.keys, |ctx, locked| {
        if !mpop_first(ctx, locked, &p)? {
            ctx.reply.null_array();
        }
        Ok(())
    })
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]: as
/// LMPOP, or waits for one of the keys; a null array after the timeout.
fn blmpop(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let p = parse_mpop(argv, 2)?;
    let t = timeout(argv[1])?;
    let mut locked = ctx.lock(p.keys);
    let result = mpop_first(ctx, &mut locked, &p);
    if let Ok(false) = result {
        ctx.block(p.keys, argv, t, TimeoutReply::NullArray);
    }
    ctx.finish(locked);
    result.map(drop)
}

/// Redis's blockingPopGenericCommand for BLPOP and BRPOP: `[key, element]`
/// from the first non-empty list in argument order, or a wait on all keys.
fn bpop_generic(ctx: &mut Ctx<'_>, argv: &[&[u8]], end: End) -> Result<(), CmdError> {
    let keys = &argv[1..argv.len() - 1];
    let t = timeout(argv[argv.len() - 1])?;
    let mut locked = ctx.lock(keys);
    let result = bpop_first(ctx, &mut locked, keys, end);
    if let Ok(false) = result {
        ctx.block(keys, argv, t, TimeoutReply::NullArray);
    }
    ctx.finish(locked);
    result.map(drop)
}

fn bpop_first(
    ctx: &mut Ctx<'_>,
    locked: &mut Locked<'_>,
    keys: &[&[u8]],
    end: End,
) -> Result<bool, CmdError> {
    for key in keys {
        let popped = match pop_items(ctx, locked, key, end, 1) {
            // A blocked client is served only from lists (see move_one).
            Err(_) if ctx.serving => continue,
            popped => popped?,
        };
        if let Some(item) = popped.and_then(|mut v| v.pop()) {
            ctx.reply.array(2);
            ctx.reply.bulk(key);
            ctx.reply.bulk(&item);
            return Ok(true);
        }
    }
    Ok(false)
}

/// BLPOP key [key ...] timeout: `[key, element]`, or a null array after
/// the timeout.
fn blpop(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    bpop_generic(ctx, argv, End::Head)
}

/// BRPOP key [key ...] timeout: as BLPOP, from the tail.
fn brpop(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    bpop_generic(ctx, argv, End::Tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_redis() {
        assert_eq!(resolve_range(0, -1, 3), Some((0, 3)));
        assert_eq!(resolve_range(-100, 100, 3), Some((0, 3)));
        assert_eq!(resolve_range(2, 1, 3), None);
        assert_eq!(resolve_range(3, 5, 3), None);
        assert_eq!(resolve_range(i64::MIN, i64::MAX, 3), Some((0, 3)));
        assert_eq!(resolve_range(0, 0, 0), None);
        assert_eq!(resolve_index(-1, 3), Some(2));
        assert_eq!(resolve_index(-4, 3), None);
        assert_eq!(resolve_index(i64::MIN, 3), None);
    }

    #[test]
    fn mpop_arguments() {
        let argv: Vec<&[u8]> = vec![b"lmpop", b"2", b"a", b"b", b"left", b"count", b"3"];
        let p = parse_mpop(&argv, 1).map_err(|e| e.text().into_owned());
        let p = p.as_ref().map(|p| (p.keys.len(), p.end, p.count));
        assert_eq!(p, Ok((2, End::Head, 3)));
        let argv: Vec<&[u8]> = vec![b"lmpop", b"9223372036854775807", b"a", b"left"];
        assert!(matches!(parse_mpop(&argv, 1), Err(CmdError::Syntax)));
    }
}
